"""The Vietnamese of problems: the language negotiation and the message catalogue.

Problems are raised in English (code and detail) and rendered by `app.errors` in the caller's
language; this module holds what that takes. A new error code needs its sentence in
`MESSAGES_VI` (a test checks every raised code has one). `app.errors` re-exports these names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.errors import FieldError

# ---- languages ---------------------------------------------------------------------------------
#
# Problems are written in English where they are raised (code and detail); the handler renders
# them in the caller's language. Vietnamese is the default; English when `Accept-Language`
# prefers it. Codes never change with the language. What is translated, in this order:
# 1. the exact English detail (`DETAILS_VI`, `FIELD_DETAILS_VI`),
# 2. a detail with values in it (`PATTERNS_VI`, `FIELD_PATTERNS_VI`),
# 3. the problem's code (`MESSAGES_VI`) or, for a field, pydantic's error type
#    (`VALIDATION_VI`, formatted with the error's context),
# 4. the status (`TITLES_VI`): a Vietnamese sentence rather than an English one.
# The OAuth token errors (RFC 6749 codes) stay in English: §5.2 allows only ASCII there.

Language = Literal["vi", "en"]
DEFAULT_LANGUAGE: Language = "vi"
OAUTH_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)


def negotiate_language(accept_language: str | None) -> Language:
    """The language of a problem: `en` when the header ranks English above Vietnamese (q-values,
    then order), `vi` otherwise, including when it names neither or is absent."""
    best: dict[str, tuple[float, int]] = {}
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, rest = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("vi", "en"):
            continue
        q = 1.0
        for param in rest.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0  # an unreadable weight does not count as a preference
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        if q > 0 and (primary not in best or best[primary][0] < q):
            best[primary] = (q, -position)
    if "en" in best and ("vi" not in best or best["en"] > best["vi"]):
        return "en"
    return DEFAULT_LANGUAGE


TITLES_VI: dict[int, str] = {
    400: "Yêu cầu không hợp lệ",
    401: "Chưa xác thực",
    403: "Không có quyền",
    404: "Không tìm thấy",
    405: "Phương thức không được phép",
    406: "Không đáp ứng được định dạng yêu cầu",
    409: "Xung đột dữ liệu",
    410: "Không còn hiệu lực",
    412: "Điều kiện không thỏa mãn",
    413: "Nội dung yêu cầu quá lớn",
    415: "Kiểu nội dung không được hỗ trợ",
    422: "Dữ liệu không hợp lệ",
    428: "Thiếu điều kiện",
    429: "Quá nhiều yêu cầu",
    500: "Lỗi máy chủ",
    503: "Dịch vụ tạm thời không sẵn sàng",
}

# The message of each problem code, used when the detail itself has no translation.
MESSAGES_VI: dict[str, str] = {
    "not_found": "Không tìm thấy đối tượng yêu cầu.",
    "forbidden": "Bạn không có quyền thực hiện thao tác này.",
    "unauthorized": "Cần một bearer token hợp lệ.",
    "invalid": "Yêu cầu không hợp lệ; xem danh sách lỗi.",
    "validation_failed": "Yêu cầu không hợp lệ; xem danh sách lỗi.",
    "bad_cursor": "Con trỏ phân trang không phải do API này cấp.",
    "method_not_allowed": "Địa chỉ này không nhận phương thức HTTP này.",
    "not_acceptable": "Không có định dạng phản hồi nào phù hợp với yêu cầu.",
    "payload_too_large": "Nội dung yêu cầu vượt quá giới hạn cho phép.",
    "unsupported_media_type": "Kiểu nội dung của yêu cầu không được hỗ trợ.",
    "conflict": "Thay đổi xung đột với dữ liệu đã lưu.",
    "database_unavailable": "Cơ sở dữ liệu đang bận hoặc không truy cập được; hãy thử lại sau "
    "giây lát.",
    "invalid_value": "Có giá trị vượt quá phạm vi hoặc chứa ký tự không lưu được (như NUL).",
    "internal_error": "Đã xảy ra lỗi ngoài dự kiến. Hãy cung cấp mã yêu cầu (request id) khi "
    "báo lỗi.",
    "rate_limited": "Quá nhiều yêu cầu trong phút này; hãy thử lại sau.",
    "campaign_locked": "Trạng thái hiện tại của đợt khảo sát không cho phép thay đổi này.",
    "campaign_code_taken": "Mã đợt khảo sát này đã được dùng.",
    "campaign_not_closed": "Chỉ công bố được đợt khảo sát đã đóng; hãy đóng đợt trước.",
    "campaign_not_open": "Đợt khảo sát không mở: chỉ nhận phiếu khi đợt đang mở.",
    "campaign_without_scope": "Hãy thêm cơ quan, đơn vị vào đợt khảo sát trước khi mở.",
    "transition_not_allowed": "Đợt khảo sát không thể chuyển sang trạng thái này.",
    "frame_sizes_missing": "Mỗi tầng mẫu cần quy mô tổng thể (nhập khung mẫu hoặc đặt N_h) "
    "trước khi phân bổ.",
    "targets_missing": "Mỗi tầng mẫu cần chỉ tiêu trước khi rút mẫu: nhập khung mẫu, rồi phân "
    "bổ hoặc đặt chỉ tiêu.",
    "questionnaire_frozen": "Phiên bản này đã bị khóa (đã có đợt khảo sát mở trên nó, hoặc là "
    "phiên bản dựng sẵn); hãy tạo phiên bản mới.",
    "username_taken": "Tên đăng nhập này đã được dùng.",
    "cannot_demote_self": "Bạn không thể tự vô hiệu hóa hoặc hạ quyền tài khoản của chính mình.",
    "client_revoked": "Ứng dụng đã bị thu hồi không thể nhận khóa bí mật mới.",
    "agency_code_taken": "Mã cơ quan, đơn vị này đã được dùng.",
    "agency_cycle": "Không thể đặt cơ quan dưới chính nó hoặc dưới một đơn vị trực thuộc của nó.",
    "agency_has_active_children": "Cơ quan còn đơn vị trực thuộc đang hoạt động; hãy cho các "
    "đơn vị đó ngừng hoạt động hoặc chuyển đi trước.",
    "sector_code_taken": "Mã lĩnh vực này đã được dùng.",
    "procedure_code_taken": "Mã thủ tục hành chính này đã được dùng.",
    "unknown_agency": "Không có cơ quan, đơn vị nào có mã này.",
    "dossier_conflict": "Mã hồ sơ này đã được báo với thông tin khác.",
    "invitation_used": "Lời mời này đã được sử dụng.",
    "invitation_expired": "Lời mời này đã hết hạn.",
    "invitation_invalid": "Lời mời không hợp lệ.",
    "idempotency_conflict": "Mã phiếu (submission_id) này đã được dùng cho một phiếu khác.",
    "review_not_allowed": "Phiếu không thể chuyển sang trạng thái này.",
    "recheck_pending": "Đợt khảo sát phải phúc tra xong trước khi công bố.",
    "recheck_assigned_elsewhere": "Phiếu phúc tra này đã giao cho người khác.",
    "observation_answered": "Ý kiến giám sát này đã được trả lời.",
    "not_a_worker": "Người được giao phải là người có quyền ghi kết quả phúc tra.",
    "one_of": "Chỉ được gửi một trong hai trường.",
    "invalid_state": "Trạng thái này không phải là kết quả xét duyệt.",
    "already_reviewed": "Phiếu đã được duyệt: không thể sửa nữa.",
    "weights_unavailable": "Kết quả có trọng số cần quy mô tổng thể cho mọi tầng mẫu có phiếu.",
    "unreadable_file": "Không đọc được tệp gửi lên.",
    "import_too_large": "Tệp gửi lên vượt quá giới hạn cho phép; xem giới hạn được nêu.",
    "url_not_allowed": "Địa chỉ webhook không được phép (chỉ https tới địa chỉ công khai, trừ "
    "các máy được cấu hình cho phép).",
    "delivery_not_dead": "Chỉ gửi lại được lần giao đã hết lượt thử (thư chết).",
    "campaign_not_published": "Chiến dịch chưa công bố kết quả.",
    "too_many_items": "Lô gửi lên có nhiều phần tử hơn mức cho phép (MAX_BATCH_ITEMS).",
    "json_too_deep": "Nội dung JSON lồng nhau quá nhiều cấp so với giới hạn cho phép.",
    "import_rejected": "Dữ liệu nhập không hợp lệ; xem danh sách lỗi.",
    "not_unicode": "Yêu cầu chứa văn bản không phải Unicode; xem danh sách lỗi.",
}

# Fixed details the services raise under a shared code.
DETAILS_VI: dict[str, str] = {
    "The request is not valid; see errors.": "Yêu cầu không hợp lệ; xem danh sách lỗi.",
    "The form is not valid; see errors.": "Phiếu không hợp lệ; xem danh sách lỗi.",
    "A valid bearer token is required.": "Cần một bearer token hợp lệ.",
    "The token is invalid or expired.": "Token không hợp lệ hoặc đã hết hạn.",
    "The token has been revoked or its owner is no longer active.": "Token đã bị thu hồi hoặc "
    "chủ sở hữu không còn hoạt động.",
    "You do not have the right to do this.": "Bạn không có quyền thực hiện thao tác này.",
    "No resource lives at this address.": "Không có tài nguyên nào ở địa chỉ này.",
    "Unknown breakdown.": "Cách phân nhóm không được hỗ trợ.",
    "The cursor is not one this API issued.": "Con trỏ phân trang không phải do API này cấp.",
    "Send a client-made submission_id or an Idempotency-Key header.": "Hãy gửi submission_id "
    "do ứng dụng tạo hoặc header Idempotency-Key.",
    "These fields cannot be null.": "Các trường này không được để trống.",
    "These fields cannot be empty.": "Các trường này không được để trống.",
    "The dates are not in order.": "Các ngày không theo đúng thứ tự.",
    "The agency would end before it starts.": "Cơ quan sẽ kết thúc trước khi bắt đầu.",
    "The questionnaire definition is not valid; see errors.": "Định nghĩa phiếu khảo sát không "
    "hợp lệ; xem danh sách lỗi.",
    "The dossier event is not valid.": "Sự kiện hồ sơ không hợp lệ.",
    "The tally is not possible; see errors.": "Bảng tổng hợp không thể có; xem danh sách lỗi.",
    "Some strata are not valid.": "Một số tầng mẫu không hợp lệ.",
    "Some assignments are not valid.": "Một số phân công không hợp lệ.",
    "Some successors are not valid; see errors.": "Một số đơn vị kế thừa không hợp lệ; xem danh "
    "sách lỗi.",
    "The campaign refers to things that do not exist.": "Đợt khảo sát tham chiếu đến dữ liệu "
    "không tồn tại.",
    "The procedure refers to unknown data; see errors.": "Thủ tục tham chiếu đến dữ liệu không "
    "tồn tại; xem danh sách lỗi.",
    "An agency manager must be attached to an agency.": "Người quản lý cơ quan phải gắn với một "
    "cơ quan, đơn vị.",
    "The agency does not exist.": "Cơ quan, đơn vị không tồn tại.",
    "The parent agency does not exist.": "Cơ quan cấp trên không tồn tại.",
    "The level is not one of the agency levels.": "Cấp này không phải là một cấp hành chính đã "
    "khai báo.",
    "The current password is wrong.": "Mật khẩu hiện tại không đúng.",
    "Say why.": "Hãy nêu lý do.",
    "No such index node.": "Không có nút chỉ số này.",
    "The baseline campaign has no index.": "Đợt khảo sát gốc không có chỉ số.",
    "unit_mean averages agencies: use it with group_by none, agency or level.": "unit_mean lấy "
    "trung bình theo cơ quan: chỉ dùng với group_by none, agency hoặc level.",
    "The campaign has no questionnaire.": "Đợt khảo sát không có phiếu khảo sát.",
    "The request holds text that is not Unicode; see errors.": "Yêu cầu chứa văn bản không "
    "phải Unicode; xem danh sách lỗi.",
    "The grant is missing fields.": "Yêu cầu cấp token thiếu trường.",
    "Only the surveyor who entered a form may correct it.": "Chỉ điều tra viên đã nhập phiếu "
    "mới được sửa phiếu đó.",
    "Machine clients have no password; rotate the secret instead.": "Ứng dụng máy không có mật "
    "khẩu; hãy đổi khóa bí mật.",
    "The name cannot be empty.": "Tên không được để trống.",
    "The scopes cannot be empty.": "Phạm vi quyền không được để trống.",
    "The role cannot be empty.": "Vai trò không được để trống.",
    "is_active cannot be empty.": "is_active không được để trống.",
    "name_vi cannot be empty.": "name_vi không được để trống.",
    "The invitation is not valid.": "Lời mời không hợp lệ.",
    "The invitation is not for this campaign.": "Lời mời không thuộc đợt khảo sát này.",
    "The campaign is published: its forms are final.": "Đợt khảo sát đã công bố: phiếu của đợt "
    "không thể thay đổi.",
}

NOUNS_VI: dict[str, str] = {
    "resource": "đối tượng yêu cầu",
    "campaign": "đợt khảo sát",
    "questionnaire": "phiếu khảo sát",
    "agency": "cơ quan, đơn vị",
    "user": "người dùng",
    "client": "ứng dụng",
    "report": "báo cáo",
    "submission": "phiếu",
    "sector": "lĩnh vực",
    "procedure": "thủ tục hành chính",
    "dossier": "hồ sơ",
    "invitation": "lời mời",
}

# Details with values in them: a pattern over the English, the Vietnamese with its groups.
PATTERNS_VI: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"This needs the scope (.+)\."), "Thao tác này cần phạm vi quyền {0}."),
    (
        re.compile(r"More than (\d+) requests this minute; retry in (\d+) s\."),
        "Quá {0} yêu cầu trong phút này; hãy thử lại sau {1} giây.",
    ),
    (
        re.compile(r"The request body is larger than the limit of (\d+) bytes\."),
        "Nội dung yêu cầu lớn hơn giới hạn {0} byte.",
    ),
    (
        re.compile(r"A campaign that is (\w+) cannot become (\w+); it may become: (.*)\."),
        "Đợt khảo sát đang ở trạng thái {0} không thể chuyển sang {1}; có thể chuyển sang: {2}.",
    ),
    (
        re.compile(r"The campaign is (\w+): forms are taken only while it is open\."),
        "Đợt khảo sát đang ở trạng thái {0}: chỉ nhận phiếu khi đợt đang mở.",
    ),
)

# Per-field messages: the pydantic error types (formatted with the error's context) ...
VALIDATION_VI: dict[str, str] = {
    "missing": "Trường này là bắt buộc.",
    "extra_forbidden": "Trường này không được phép.",
    "json_invalid": "JSON không hợp lệ.",
    "json_type": "Cần một chuỗi JSON.",
    "model_type": "Cần một đối tượng.",
    "model_attributes_type": "Cần một đối tượng.",
    "dict_type": "Cần một đối tượng.",
    "list_type": "Cần một danh sách.",
    "tuple_type": "Cần một danh sách.",
    "set_type": "Cần một danh sách.",
    "string_type": "Cần một chuỗi ký tự.",
    "string_unicode": "Cần một chuỗi Unicode hợp lệ.",
    "string_too_short": "Cần ít nhất {min_length} ký tự.",
    "string_too_long": "Tối đa {max_length} ký tự.",
    "string_pattern_mismatch": "Không đúng định dạng {pattern}.",
    "too_short": "Cần ít nhất {min_length} phần tử.",
    "too_long": "Tối đa {max_length} phần tử.",
    "int_type": "Cần một số nguyên.",
    "int_parsing": "Cần một số nguyên.",
    "int_from_float": "Cần một số nguyên, không có phần thập phân.",
    "int_parsing_size": "Số nguyên quá lớn.",
    "float_type": "Cần một số.",
    "float_parsing": "Cần một số.",
    "finite_number": "Cần một số hữu hạn.",
    "decimal_type": "Cần một số thập phân.",
    "decimal_parsing": "Cần một số thập phân.",
    "bool_type": "Cần giá trị true hoặc false.",
    "bool_parsing": "Cần giá trị true hoặc false.",
    "greater_than": "Phải lớn hơn {gt}.",
    "greater_than_equal": "Phải lớn hơn hoặc bằng {ge}.",
    "less_than": "Phải nhỏ hơn {lt}.",
    "less_than_equal": "Phải nhỏ hơn hoặc bằng {le}.",
    "multiple_of": "Phải là bội số của {multiple_of}.",
    "literal_error": "Phải là một trong các giá trị: {expected}.",
    "enum": "Phải là một trong các giá trị: {expected}.",
    "uuid_type": "Cần một UUID.",
    "uuid_parsing": "Cần một UUID hợp lệ.",
    "datetime_type": "Cần một thời điểm (ISO 8601).",
    "datetime_parsing": "Cần một thời điểm hợp lệ (ISO 8601).",
    "datetime_from_date_parsing": "Cần một thời điểm hợp lệ (ISO 8601).",
    "timezone_aware": "Thời điểm phải có múi giờ.",
    "date_type": "Cần một ngày (YYYY-MM-DD).",
    "date_parsing": "Cần một ngày hợp lệ (YYYY-MM-DD).",
    "date_from_datetime_parsing": "Cần một ngày hợp lệ (YYYY-MM-DD).",
    "date_from_datetime_inexact": "Cần một ngày, không có giờ.",
    "url_parsing": "Cần một địa chỉ URL hợp lệ.",
    "url_type": "Cần một địa chỉ URL.",
    "value_error": "Giá trị không hợp lệ.",
    "assertion_error": "Giá trị không hợp lệ.",
}

# ... and the services' own field messages (answers, references, scope).
FIELD_DETAILS_VI: dict[str, str] = {
    "must not be null": "không được để trống",
    "required without an invitation": "bắt buộc khi không có lời mời",
    "required without an Idempotency-Key header": "bắt buộc khi không có header Idempotency-Key",
    "required in a batch": "bắt buộc trong một lô",
    "no agency has this code": "không có cơ quan, đơn vị nào có mã này",
    "no procedure has this code": "không có thủ tục hành chính nào có mã này",
    "no sector has this code": "không có lĩnh vực nào có mã này",
    "not the procedure's sector": "không phải lĩnh vực của thủ tục",
    "the agency is outside the campaign's scope": "cơ quan không thuộc phạm vi đợt khảo sát",
    "the agency is outside your scope": "cơ quan không thuộc phạm vi của bạn",
    "you are not assigned to this agency": "bạn không được phân công cho cơ quan này",
    "the sector is outside the campaign's scope": "lĩnh vực không thuộc phạm vi đợt khảo sát",
    "not in this campaign's frame": "không có trong khung mẫu của đợt khảo sát",
    "already used with another body": "đã được dùng cho một nội dung khác",
    "refused earlier in this batch": "đã bị từ chối ở phần trước của lô này",
    "this item needs an answer": "câu hỏi này cần được trả lời",
    "expected an integer": "cần một số nguyên",
    "expected one option code": "cần một mã lựa chọn",
    "expected a list of option codes": "cần một danh sách mã lựa chọn",
    "no option chosen; use null for no answer": "chưa chọn phương án nào; dùng null nếu không "
    "trả lời",
    "expected an option code": "cần một mã lựa chọn",
    "expected text": "cần văn bản",
    "expected a catalogue code": "cần một mã trong danh mục",
    "empty code; use null for no answer": "mã rỗng; dùng null nếu không trả lời",
    "no such item in this questionnaire": "phiếu khảo sát không có câu hỏi này",
    "required item": "câu hỏi bắt buộc",
    "holds a NUL character (\\u0000), which cannot be stored": "chứa ký tự NUL (\\u0000), không "
    "lưu được",
    "no agency with this id": "không có cơ quan, đơn vị nào có id này",
    "no such id": "không có id này",
    "required for the agency_manager role": "bắt buộc với vai trò agency_manager",
    "does not match": "không khớp",
    "required to flag or reject": "bắt buộc khi gắn cờ hoặc từ chối",
    "not a cursor from a previous page": "không phải con trỏ của một trang trước",
    "bad cursor": "con trỏ không hợp lệ",
    "required for this grant_type": "bắt buộc với grant_type này",
    "text must be Unicode NFC": "văn bản phải ở dạng Unicode NFC",
    "a count cannot be negative": "số đếm không được âm",
    "already used": "đã được dùng",
    "duplicate": "bị trùng",
    "expired": "đã hết hạn",
    "an agency cannot succeed itself": "một cơ quan không thể kế thừa chính nó",
    "before fieldwork_start": "trước fieldwork_start",
    "before period_start": "trước period_start",
    "children are still valid after this day": "còn đơn vị trực thuộc hoạt động sau ngày này",
    "must be above suppress_below": "phải lớn hơn suppress_below",
    "must be at least 1": "phải ít nhất là 1",
    "must not be before valid_from": "không được trước valid_from",
    "valid_to must not be before valid_from": "valid_to không được trước valid_from",
    "needs group_by none, agency or level": "cần group_by là none, agency hoặc level",
    "no agency with this code in your scope": "không có cơ quan, đơn vị nào có mã này trong phạm "
    "vi của bạn",
    "no index": "không có chỉ số",
    "no sector with this id": "không có lĩnh vực nào có id này",
    "no such agency": "không có cơ quan, đơn vị này",
    "no such questionnaire": "không có phiếu khảo sát này",
    "no such user": "không có người dùng này",
    "not an answer of this item": "không phải một câu trả lời của câu hỏi này",
    "not in the campaign's scope": "không thuộc phạm vi đợt khảo sát",
    "overall, a pillar, element or criterion id": "overall, hoặc mã một trụ cột, yếu tố hay tiêu "
    "chí",
    "required while the agency has no valid_to": "bắt buộc khi cơ quan chưa có valid_to",
    "the same assignment twice": "phân công bị lặp",
    "the same cell twice": "ô bị lặp",
    "the user is not a surveyor": "người dùng không phải điều tra viên",
    "this dossier code was reported with other details": "mã hồ sơ này đã được báo với thông "
    "tin khác",
    "would make the agency its own ancestor": "sẽ làm cơ quan trở thành cấp trên của chính nó",
    "the agency is not in the campaign's scope": "cơ quan không thuộc phạm vi đợt khảo sát",
    "the procedure's sector is not in the campaign's scope": "lĩnh vực của thủ tục không thuộc "
    "phạm vi đợt khảo sát",
    "not editable while open": "không sửa được khi đợt đang mở",
    # questionnaire definitions
    "a choice item needs at least two options": "câu hỏi lựa chọn cần ít nhất hai phương án",
    "a criterion belongs to an element": "một tiêu chí phải thuộc một yếu tố",
    "a criterion needs a single-answer scale and a positive set": "một tiêu chí cần thang đo "
    "một đáp án và tập đáp án tích cực",
    "a dossier indicator is scored 0/1/2": "chỉ tiêu hồ sơ được chấm 0/1/2",
    "a multiple-choice item needs max_choices": "câu hỏi nhiều lựa chọn cần max_choices",
    "a pillar needs at least one element": "một trụ cột cần ít nhất một yếu tố",
    "a reference item names its catalogue": "câu hỏi tham chiếu phải nêu danh mục",
    "a value is repeated": "có giá trị bị lặp",
    "dossier indicators need a scoring": "chỉ tiêu hồ sơ cần cách chấm điểm",
    "element weights must sum to 1": "tổng trọng số các yếu tố phải bằng 1",
    "pillar weights must sum to 1": "tổng trọng số các trụ cột phải bằng 1",
    "elements need index rules": "các yếu tố cần quy tắc tính chỉ số",
    "every element belongs to a pillar": "mỗi yếu tố phải thuộc một trụ cột",
    "min_total above max_total": "min_total lớn hơn max_total",
    "min_value is above max_value": "min_value lớn hơn max_value",
    "no dossier indicator to score": "không có chỉ tiêu hồ sơ để chấm",
    "no pillars to average": "không có trụ cột để lấy trung bình",
    "only criteria belong to an element": "chỉ tiêu chí mới thuộc một yếu tố",
    "only free-text items take max_length": "chỉ câu hỏi văn bản tự do có max_length",
    "only integer items take bounds": "chỉ câu hỏi số nguyên có giới hạn",
    "only multiple-choice items take max_choices": "chỉ câu hỏi nhiều lựa chọn có max_choices",
    "only reference items take ref": "chỉ câu hỏi tham chiếu có ref",
    "only the designated_item rule": "chỉ dùng với quy tắc designated_item",
    "pillars are defined but the overall ignores them": "đã khai báo trụ cột nhưng chỉ số chung "
    "không dùng đến",
    "points apply to score012 items only": "điểm chỉ áp dụng cho câu hỏi score012",
    "points must not be negative": "điểm không được âm",
    "the designated_item rule names an item": "quy tắc designated_item phải nêu một câu hỏi",
    "the positive set is empty": "tập đáp án tích cực đang rỗng",
    "weights must not be negative": "trọng số không được âm",
    "holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff), which is not text": "chứa một "
    "nửa cặp UTF-16 đứng riêng (\\ud800 đến \\udfff), không phải văn bản",
}
FIELD_PATTERNS_VI: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"outside the (\w+) scale"), "ngoài thang đo {0}"),
    (re.compile(r"outside (\S+)\.\.(\S+)"), "ngoài khoảng {0}..{1}"),
    (re.compile(r"(.+) is not an option"), "{0} không phải là một phương án"),
    (re.compile(r"(.+) chosen twice"), "{0} được chọn hai lần"),
    (re.compile(r"at most (\d+) choices"), "tối đa {0} lựa chọn"),
    (re.compile(r"longer than (\d+) characters"), "dài quá {0} ký tự"),
)


def _by_pattern(text: str, patterns: Sequence[tuple[re.Pattern[str], str]]) -> str | None:
    for pattern, template in patterns:
        match = pattern.fullmatch(text)
        if match:
            return template.format(*match.groups())
    return None


def title_for(status: int, language: Language) -> str:
    if language == "vi":
        fallback = "Lỗi máy chủ" if status >= 500 else "Yêu cầu không thực hiện được"
        return TITLES_VI.get(status, fallback)
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def detail_vi(status: int, code: str, detail: str) -> str:
    """The Vietnamese of a problem's detail (see the order above)."""
    if detail in DETAILS_VI:
        return DETAILS_VI[detail]
    found = _by_pattern(detail, PATTERNS_VI)
    if found is not None:
        return found
    missing = re.fullmatch(r"The (.+) was not found\.", detail)
    if code == "not_found" and missing:
        return f"Không tìm thấy {NOUNS_VI.get(missing.group(1), missing.group(1))}."
    if code in MESSAGES_VI:
        return MESSAGES_VI[code]
    return f"{title_for(status, 'vi')}."


def field_detail_vi(error: FieldError) -> str:
    """The Vietnamese of one field's message: the service's fixed text, a text with values,
    or the pydantic error type formatted with its context; the English when none applies."""
    if error.detail in FIELD_DETAILS_VI:
        return FIELD_DETAILS_VI[error.detail]
    found = _by_pattern(error.detail, FIELD_PATTERNS_VI)
    if found is not None:
        return found
    template = VALIDATION_VI.get(error.code) if error.params is not None else None
    if template is not None:
        try:
            return template.format(**error.params) if error.params else template.format()
        except (KeyError, IndexError, ValueError):
            return VALIDATION_VI["value_error"]
    return error.detail


def translated(status: int, code: str, detail: str, language: Language | None) -> tuple[str, str]:
    """(title, detail) in the language; None keeps the English as raised."""
    if language is None or code in OAUTH_CODES:
        return title_for(status, "en"), detail
    if language == "en":
        return title_for(status, "en"), detail
    return title_for(status, "vi"), detail_vi(status, code, detail)
