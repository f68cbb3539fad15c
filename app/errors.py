"""The one error envelope: RFC 9457 problem details, rendered for every error path."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, Literal, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending field or item, located by a JSON pointer into the request."""

    pointer: str
    detail: str
    code: str = "invalid"
    # A pydantic error's context (limits, expected values), for the translated message.
    params: Mapping[str, Any] | None = field(default=None, compare=False)

    def as_dict(self, language: Language | None = None) -> dict[str, str]:
        detail = self.detail if language != "vi" else field_detail_vi(self)
        return {"pointer": self.pointer, "code": self.code, "detail": detail}


@dataclass(slots=True)
class AppError(Exception):
    """An expected failure. Services raise these; the handler renders problem+json."""

    code: str
    detail: str
    status: int = 400
    errors: Sequence[FieldError] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


# The usual failures as classes of their own, so that a caller can catch one by its type. Each
# renders exactly as an AppError with the same code, detail and status would.


class NotFoundError(AppError):
    """404 `not_found`: the thing named does not exist, or the caller may not know it does."""

    def __init__(self, what: str = "resource") -> None:
        super().__init__("not_found", f"The {what} was not found.", 404)


class ConflictError(AppError):
    """409: the change conflicts with the state of what is stored; `code` says which rule."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(code, detail, 409, errors, dict(headers or {}), dict(extra or {}))


class PermissionDeniedError(AppError):
    """403 `forbidden`: the caller is known but may not do this."""

    def __init__(self, detail: str = "You do not have the right to do this.") -> None:
        super().__init__("forbidden", detail, 403)


class UnauthorizedError(AppError):
    """401 `unauthorized`: no valid bearer token; answers with the Bearer challenge."""

    def __init__(self, detail: str = "A valid bearer token is required.") -> None:
        super().__init__(
            "unauthorized", detail, 401, headers={"WWW-Authenticate": 'Bearer realm="sipas"'}
        )


class InvalidError(AppError):
    """422: the request is well-formed but its content breaks a rule; `errors` point at it."""

    def __init__(
        self, detail: str, errors: Sequence[FieldError] = (), code: str = "invalid"
    ) -> None:
        super().__init__(code, detail, 422, errors=errors)


# The names services have used since the start; the same classes.
NotFound = NotFoundError
Conflict = ConflictError
PermissionDenied = PermissionDeniedError
Unauthorized = UnauthorizedError
Invalid = InvalidError


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


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    request_id: str | None,
    instance: str | None = None,
    errors: Sequence[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
    language: Language | None = None,
) -> dict[str, Any]:
    """The problem document; with a `language`, its title, detail and field messages are in
    it (the code, type and pointers never change)."""
    title, detail = translated(status, code, detail, language)
    field_language = None if code in OAUTH_CODES else language
    body: dict[str, Any] = {
        "type": f"urn:sipas:problem:{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = [e.as_dict(field_language) for e in errors]
    if extra:
        body.update(extra)
    return body


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json response in the caller's language (`Accept-Language`, Vietnamese by
    default), saying which in `Content-Language`."""
    request_id = getattr(request.state, "request_id", None)
    language = negotiate_language(request.headers.get("accept-language"))
    body = problem_body(
        status,
        code,
        detail,
        request_id=request_id,
        instance=request.url.path,
        errors=errors,
        extra=extra,
        language=language,
    )
    answer_headers = {
        **dict(headers or {}),
        "Content-Language": "en" if code in OAUTH_CODES else language,
    }
    vary = answer_headers.get("Vary")
    answer_headers["Vary"] = f"{vary}, Accept-Language" if vary else "Accept-Language"
    return JSONResponse(body, status_code=status, headers=answer_headers, media_type=PROBLEM_JSON)


def pointer_from_loc(loc: Sequence[int | str]) -> str:
    """Turn a pydantic error location such as ("body", "items", 3, "value") into a JSON pointer.

    The first element says where the value came from (body, query, path, header); the pointer
    keeps it so the client knows which part of the request to look at.
    """
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/" + "/".join(parts)


def field_errors(
    details: Sequence[Mapping[str, Any]], prefix: Sequence[int | str] = ()
) -> list[FieldError]:
    """pydantic's errors as FieldErrors (pointer, message, type and context for the
    translation), their locations under `prefix`."""
    return [
        FieldError(
            pointer_from_loc((*prefix, *err.get("loc", ()))),
            str(err.get("msg", "invalid")),
            str(err.get("type", "invalid")),
            {k: _plain(v) for k, v in (err.get("ctx") or {}).items()},
        )
        for err in details
    ]


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float) else str(value)


_STATUS_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(AppError, exc)
    return problem_response(
        request,
        exc.status,
        exc.code,
        exc.detail,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    errors = field_errors(exc.errors())
    return problem_response(
        request, 422, "validation_failed", "The request is not valid; see errors.", errors=errors
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No resource lives at this address."
    return problem_response(request, exc.status_code, code, detail, headers=exc.headers)


# What a named database constraint means to a client, when the services did not check first.
# Declared here, the one place, by the constraint names the migrations give; a constraint not
# named here answers the generic sentence.
CONSTRAINT_MEANINGS: Mapping[str, str] = MappingProxyType(
    {
        "agencies_no_cycle": "An agency cannot be placed under itself or one of its descendants.",
        "uq_agencies_code": "Another agency already has this code.",
        "uq_sectors_code": "Another sector already has this code.",
        "uq_procedures_code": "Another procedure already has this code.",
        "uq_campaigns_code": "Another campaign already has this code.",
        "questionnaires_frozen": "The questionnaire version is frozen: a campaign opened on it.",
    }
)


def _constraint_name(exc: IntegrityError) -> str | None:
    orig = exc.orig
    name = getattr(orig, "constraint_name", None)
    cause = getattr(orig, "__cause__", None)
    if name is None and cause is not None:
        name = getattr(cause, "constraint_name", None)
    return name if isinstance(name, str) else None


async def _integrity_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(IntegrityError, exc)
    name = _constraint_name(exc)
    logger.warning("integrity error", extra={"constraint": name})
    detail = CONSTRAINT_MEANINGS.get(name or "", "The change conflicts with data already stored.")
    extra = {"constraint": name} if name else None
    return problem_response(request, 409, "conflict", detail, extra=extra)


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.error("database unavailable", exc_info=exc)
    return problem_response(
        request,
        503,
        "database_unavailable",
        "The database is busy or unreachable; retry shortly.",
        headers={"Retry-After": "2"},
    )


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """A value the database cannot take (a number out of its range, a NUL character in text):
    the request's fault, so 422, never a 500."""
    logger.info("data error", extra={"error": type(getattr(exc, "orig", exc)).__name__})
    return problem_response(
        request,
        422,
        "invalid_value",
        "A value is out of range or holds a character that cannot be stored (such as NUL).",
    )


# asyncpg errors that mean the connection or the server went away, not that the request is wrong.
_TRANSIENT = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "ConnectionFailureError",
    "AdminShutdownError",
    "CrashShutdownError",
    "TooManyConnectionsError",
    "InterfaceError",
    "InternalClientError",
}


# SQLSTATEs that say "try again": a serialization failure (also what a hot standby raises when
# it cancels a read that conflicts with replay) and a deadlock victim.
_RETRY_STATES = {"40001", "40P01"}


def _is_transient(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    seen: BaseException | None = exc.orig
    while seen is not None:
        if type(seen).__name__ in _TRANSIENT or isinstance(seen, ConnectionError | OSError):
            return True
        if str(getattr(seen, "sqlstate", "") or "") in _RETRY_STATES:
            return True
        seen = seen.__cause__
    return False


def _is_bad_value(exc: DBAPIError) -> bool:
    """SQLSTATE class 22 (data exception: out of range, bad encoding, NUL in text) or a value the
    driver could not encode: the request's fault."""
    seen: BaseException | None = exc.orig
    while seen is not None:
        if str(getattr(seen, "sqlstate", "") or "").startswith("22") or isinstance(
            seen, ValueError
        ):
            return True
        seen = seen.__cause__
    return False


async def _dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(DBAPIError, exc)
    if _is_transient(exc):
        return await _database_unavailable(request, exc)
    if _is_bad_value(exc):
        return await _data_error(request, exc)
    raise exc  # an unexpected database error: the middleware answers 500 and logs it


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(DBAPIError, _dbapi_error)
    for exc_type in (PoolTimeoutError, OperationalError, InterfaceError, ConnectionError):
        app.add_exception_handler(exc_type, _database_unavailable)
