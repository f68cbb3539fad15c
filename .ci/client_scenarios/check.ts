// Type-checked by .ci/clients.py against the types openapi-typescript generates from the running
// app's /openapi.json: what a TypeScript frontend or fetcher relies on must keep its shape.
import type { components, operations } from "./schema";

type Problem = components["schemas"]["Problem"];
type FieldProblem = components["schemas"]["FieldProblem"];
type Questionnaire = components["schemas"]["Questionnaire"];
type IndexNode = components["schemas"]["IndexNode"];

type Submit = operations["submissions_create"];
type SubmitBody = NonNullable<Submit["requestBody"]>["content"]["application/json"];
type Submitted = Submit["responses"][201]["content"]["application/json"];
type Refused = Submit["responses"][422]["content"]["application/problem+json"];
type Batch = operations["submissions_create_batch"];
type BatchItem = NonNullable<Batch["requestBody"]>["content"]["application/json"]["submissions"][number];
type Report = operations["reports_get"]["responses"][200]["content"]["application/json"];
type Version = operations["questionnaires_get"]["responses"][200]["content"]["application/json"];

// The frontend: render the form from the definition, submit, map a 422 to its fields.
export function itemIds(version: Version): string[] {
  const definition: Questionnaire = version.definition;
  return definition.sections.flatMap((section) => section.items.map((item) => item.id));
}

export function labels(definition: Questionnaire): string[] {
  return definition.sections.flatMap((s) =>
    s.items.flatMap((i) => (i.options ?? []).map((o) => `${o.label_vi} / ${o.label_en ?? ""}`)),
  );
}

export const form: SubmitBody = {
  channel: "web",
  agency_code: "TQ.STP",
  answers: { "S.AGENCY": "TQ.STP", "E1.C1": 5 },
};

export const queued: BatchItem[] = [form];

export function fieldsInError(problem: Refused): Record<string, string> {
  const errors: FieldProblem[] = problem.errors ?? [];
  return Object.fromEntries(errors.map((e) => [e.pointer.split("/").pop() ?? "", e.detail]));
}

export function stored(s: Submitted): string {
  return s.id;
}

export function title(p: Problem): string {
  return `${p.status} ${p.code}: ${p.detail}`;
}

// The fetcher: walk the index tree of a published report.
export function overall(report: Report): number | null | undefined {
  return report.total.index?.exact;
}

export function criteria(node: IndexNode): IndexNode[] {
  return node.kind === "criterion" ? [node] : (node.children ?? []).flatMap(criteria);
}
