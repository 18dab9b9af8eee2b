#!/usr/bin/env python3
"""Least-privilege check of the IAM policies written in stackwave's CloudFormation/SAM templates.

Usage: scripts/check-iam.py [--self-test] [TEMPLATE ...]   (default: template.yaml)

What it checks, in every template given:

* Identity policies: the `Policies` of AWS::Serverless::Function and AWS::Serverless::StateMachine
  (inline policy documents only), the `Policies` of AWS::IAM::Role, and the `PolicyDocument` of
  AWS::IAM::Policy, AWS::IAM::ManagedPolicy and AWS::IAM::RolePolicy.
  - FAIL on an Allow statement whose Action is "*" or a whole service ("s3:*", "iam:*"), or
    that uses NotAction (an Allow with NotAction grants everything else).
  - FAIL on an action that is not a literal string (an intrinsic function cannot be checked).
  - FAIL on a SAM policy template (e.g. `S3CrudPolicy: {...}`) or an AWS-managed admin policy
    (AdministratorAccess, PowerUserAccess, IAMFullAccess) in a function's or state machine's
    Policies: write the statements out so that every action and resource is visible here.
  - Partial wildcards such as "kms:GenerateDataKey*" are allowed and listed.
* EventBridge rules (AWS::Events::Rule): every target has a DeadLetterConfig, or a comment
  `# no dead letters: <reason>` directly above it.
* Resource policies (AWS::KMS::Key KeyPolicy, AWS::S3::BucketPolicy, AWS::SNS::TopicPolicy,
  AWS::SQS::QueuePolicy): only the Resource "*" rule below.
* Every statement with Resource "*" (alone or in a list) is listed, and must carry a reason:
  the convention is a YAML comment containing `why *:` followed by the reason, written
    - on the comment lines directly above the statement (its `- Sid:`/`- Effect:` line), or
    - on the comment lines directly above its `Resource:` key, or
    - at the end of the `Resource:` line itself.
  A Resource "*" without such a comment FAILS.

Managed policies that SAM adds on its own (AWSLambdaBasicExecutionRole for logs,
AWSXrayWriteOnlyAccess for Tracing) are not in the template and are not checked here.

The YAML is read with PyYAML's composer, which keeps line numbers and accepts any tag, so the
CloudFormation short forms (!Ref, !Sub, !GetAtt, !If, ...) need no constructors.

Exit status: 0 when every check passes, 1 when any fails, 2 on a usage or parse error.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import dataclass, field

try:
    import yaml
except ImportError:  # pragma: no cover - the project venv has PyYAML (a cfn-lint dependency)
    sys.stderr.write("check-iam: PyYAML is missing; run this with the project venv's python\n")
    sys.exit(2)

REASON_MARK = "why *:"

IDENTITY_TYPES = {
    "AWS::Serverless::Function",
    "AWS::Serverless::StateMachine",
    "AWS::IAM::Role",
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::RolePolicy",
}
SAM_TYPES = {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}
RESOURCE_POLICY_PROPS = {
    "AWS::KMS::Key": "KeyPolicy",
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
}
BROAD_MANAGED = {"AdministratorAccess", "PowerUserAccess", "IAMFullAccess"}
SERVICE_WILDCARD = re.compile(r"^[A-Za-z0-9-]+:\*$")


# --------------------------------------------------------------------------------------------
# YAML nodes -> plain values that remember their line
# --------------------------------------------------------------------------------------------
class Map(dict):
    line: int = 0
    key_lines: dict


class Seq(list):
    line: int = 0


@dataclass
class Scalar:
    value: str
    line: int
    tag: str


class Intrinsic:
    """A CloudFormation intrinsic in short form (!Ref x, !Sub ..., !GetAtt a.b, ...)."""

    def __init__(self, tag: str, value, line: int):
        self.tag, self.value, self.line = tag, value, line

    def __repr__(self) -> str:
        return f"{self.tag} {self.value!r}"


def convert(node):
    if isinstance(node, yaml.MappingNode):
        out = Map()
        out.line = node.start_mark.line
        out.key_lines = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else str(k)
            out[key] = convert(v)
            out.key_lines[key] = k.start_mark.line
        value = out
    elif isinstance(node, yaml.SequenceNode):
        seq = Seq(convert(v) for v in node.value)
        seq.line = node.start_mark.line
        value = seq
    else:
        value = Scalar(node.value, node.start_mark.line, node.tag)
    tag = node.tag or ""
    if tag.startswith("!"):
        return Intrinsic(tag, value, node.start_mark.line)
    return value


def text(v):
    """The literal string of a scalar, else None."""
    if isinstance(v, Scalar):
        return v.value
    return None


def as_list(v):
    if isinstance(v, Seq):
        return list(v)
    if v is None:
        return []
    return [v]


def line_of(v, default: int) -> int:
    return getattr(v, "line", default)


# --------------------------------------------------------------------------------------------
# Comments
# --------------------------------------------------------------------------------------------
def comment_block_above(lines: list[str], line: int) -> str:
    """The consecutive `#` comment lines directly above 0-based `line`."""
    out = []
    i = line - 1
    while i >= 0 and lines[i].lstrip().startswith("#"):
        out.append(lines[i].strip())
        i -= 1
    return "\n".join(reversed(out))


def trailing_comment(lines: list[str], line: int) -> str:
    src = lines[line] if 0 <= line < len(lines) else ""
    # A '#' preceded by whitespace starts a comment (quotes in these lines hold no '#').
    m = re.search(r"\s#(.*)$", src)
    return m.group(1) if m else ""


def reason_for(lines: list[str], stmt_line: int, resource_key_line: int | None) -> str | None:
    candidates = [comment_block_above(lines, stmt_line)]
    if resource_key_line is not None:
        candidates.append(comment_block_above(lines, resource_key_line))
        candidates.append(trailing_comment(lines, resource_key_line))
    for c in candidates:
        idx = c.find(REASON_MARK)
        if idx >= 0:
            reason = c[idx + len(REASON_MARK):]
            reason = " ".join(part.lstrip("#").strip() for part in reason.splitlines())
            return reason.strip() or None
    return None


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------
@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    star_resources: list[str] = field(default_factory=list)
    partial_wildcards: list[str] = field(default_factory=list)
    statements: int = 0
    policies: int = 0


def check_statement(where: str, stmt, lines, report: Report, identity: bool) -> None:
    report.statements += 1
    if not isinstance(stmt, Map):
        report.failures.append(f"{where}: a statement is not a mapping ({stmt!r})")
        return
    sid = text(stmt.get("Sid")) or f"statement at line {stmt.line + 1}"
    label = f"{where} [{sid}] (line {stmt.line + 1})"
    effect = text(stmt.get("Effect")) or ""
    if identity and effect == "Allow":
        if "NotAction" in stmt:
            report.failures.append(f"{label}: Allow with NotAction grants every other action; list the actions")
        for action in as_list(stmt.get("Action")):
            a = text(action)
            if a is None:
                report.failures.append(f"{label}: action {action!r} is not a literal string and cannot be checked")
            elif a.strip() == "*":
                report.failures.append(f'{label}: Action "*" grants every action of every service')
            elif SERVICE_WILDCARD.match(a.strip()):
                report.failures.append(f'{label}: Action "{a}" grants every action of the service; list the actions it calls')
            elif "*" in a or "?" in a:
                report.partial_wildcards.append(f"{label}: {a}")
    if "NotResource" in stmt and effect == "Allow":
        report.failures.append(f"{label}: Allow with NotResource grants every other resource; name the resources")
    resources = as_list(stmt.get("Resource"))
    if any(text(r) is not None and text(r).strip() == "*" for r in resources):
        key_line = stmt.key_lines.get("Resource")
        reason = reason_for(lines, stmt.line, key_line)
        if reason is None:
            report.failures.append(
                f'{label}: Resource "*" without a reason; write a comment `# {REASON_MARK} <why AWS offers '
                f"nothing narrower>` directly above the statement or its Resource key"
            )
        else:
            report.star_resources.append(f"{label}: {reason}")


NO_DLQ_MARK = "no dead letters:"


def check_dead_letters(where: str, props, lines, report: Report) -> None:
    """Every target of an EventBridge rule has a DeadLetterConfig: after its RetryPolicy, or at
    once on a permissions error, EventBridge drops an undeliverable event, so a trigger would
    silently never deploy. A target that may lose events says why in a comment
    `# no dead letters: <reason>` directly above its `- Id:` line."""
    for i, target in enumerate(as_list(props.get("Targets"))):
        if not isinstance(target, Map):
            continue
        if "DeadLetterConfig" in target:
            continue
        block = comment_block_above(lines, target.line)
        idx = block.find(NO_DLQ_MARK)
        reason = block[idx + len(NO_DLQ_MARK):].strip() if idx >= 0 else ""
        if not reason:
            report.failures.append(
                f"{where}.Targets[{text(target.get('Id')) or i}] (line {target.line + 1}): no DeadLetterConfig, "
                f"so an event EventBridge cannot deliver is dropped; add one, or write "
                f"`# {NO_DLQ_MARK} <why losing it is harmless>` directly above the target"
            )


STACK_WRITES = {"cloudformation:CreateChangeSet", "cloudformation:UpdateStack", "cloudformation:CreateStack"}


def check_transforms(where: str, policies, report: Report) -> None:
    """A function that creates change sets or updates stacks from templates also needs
    CreateChangeSet on the AWS-owned transforms (arn:...:aws:transform/*): CloudFormation checks
    it for any template with a Transform (SAM, macros), and answers AccessDenied without it."""
    writes, transform = False, False
    for item in policies:
        if not isinstance(item, Map) or "Statement" not in item:
            continue
        for stmt in as_list(item["Statement"]):
            if not isinstance(stmt, Map) or text(stmt.get("Effect")) != "Allow":
                continue
            actions = {text(a) for a in as_list(stmt.get("Action"))}
            if actions & STACK_WRITES:
                writes = True
            if "cloudformation:CreateChangeSet" in actions and any(
                ":aws:transform/" in (text(r.value if isinstance(r, Intrinsic) else r) or "")
                for r in as_list(stmt.get("Resource"))
            ):
                transform = True
    if writes and not transform:
        report.failures.append(
            f"{where}: creates change sets or updates stacks but lacks cloudformation:CreateChangeSet on "
            f'"arn:${{AWS::Partition}}:cloudformation:${{AWS::Region}}:aws:transform/*": templates with a '
            f"Transform would fail with AccessDenied"
        )


def check_document(where: str, doc, lines, report: Report, identity: bool) -> None:
    report.policies += 1
    if isinstance(doc, Intrinsic):
        report.failures.append(f"{where}: the policy document is an intrinsic ({doc.tag}) and cannot be checked")
        return
    if not isinstance(doc, Map) or "Statement" not in doc:
        report.failures.append(f"{where}: not a policy document with a Statement")
        return
    for stmt in as_list(doc["Statement"]):
        check_statement(where, stmt, lines, report, identity)


def check_template(path: str, report: Report) -> None:
    with open(path, encoding="utf-8") as f:
        source = f.read()
    lines = source.splitlines()
    try:
        root = convert(yaml.compose(source, Loader=yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise SystemExit(f"check-iam: {path}: not YAML: {e}") from e
    resources = root.get("Resources") if isinstance(root, Map) else None
    if not isinstance(resources, Map):
        raise SystemExit(f"check-iam: {path}: no Resources section")
    for name, res in resources.items():
        if not isinstance(res, Map):
            continue
        rtype = text(res.get("Type")) or ""
        props = res.get("Properties")
        if not isinstance(props, Map):
            continue
        where = f"{os.path.basename(path)}:{name}"
        if rtype in SAM_TYPES:
            check_transforms(where, as_list(props.get("Policies")), report)
            for i, item in enumerate(as_list(props.get("Policies"))):
                w = f"{where}.Policies[{i}]"
                s = text(item)
                if s is not None:
                    if s.rsplit("/", 1)[-1] in BROAD_MANAGED:
                        report.failures.append(f"{w}: managed policy {s} is far broader than a function needs")
                    else:
                        report.failures.append(
                            f"{w}: managed policy {s}: write inline statements instead, so that they are checked here"
                        )
                elif isinstance(item, Map) and "Statement" in item:
                    check_document(w, item, lines, report, identity=True)
                elif isinstance(item, Map):
                    names = ", ".join(item.keys())
                    report.failures.append(
                        f"{w} (line {item.line + 1}): SAM policy template {names}: write the statements out "
                        f"(templates can hide broad actions or Resource \"*\")"
                    )
                else:
                    report.failures.append(f"{w}: unsupported policy entry {item!r}")
        elif rtype == "AWS::IAM::Role":
            for i, pol in enumerate(as_list(props.get("Policies"))):
                name_ = text(pol.get("PolicyName")) if isinstance(pol, Map) else None
                w = f"{where}.Policies[{name_ or i}]"
                doc = pol.get("PolicyDocument") if isinstance(pol, Map) else None
                check_document(w, doc, lines, report, identity=True)
        elif rtype in IDENTITY_TYPES:
            check_document(f"{where}.PolicyDocument", props.get("PolicyDocument"), lines, report, identity=True)
        elif rtype == "AWS::Events::Rule":
            check_dead_letters(where, props, lines, report)
        elif rtype in RESOURCE_POLICY_PROPS:
            prop = RESOURCE_POLICY_PROPS[rtype]
            check_document(f"{where}.{prop}", props.get(prop), lines, report, identity=False)


def run(paths: list[str]) -> int:
    report = Report()
    for p in paths:
        if not os.path.isfile(p):
            sys.stderr.write(f"check-iam: {p}: no such file\n")
            return 2
        check_template(p, report)
    print(f"check-iam: {len(paths)} template(s), {report.policies} policy document(s), {report.statements} statement(s)")
    if report.star_resources:
        print('Resource "*" statements and their reasons:')
        for s in report.star_resources:
            print(f"  - {s}")
    if report.partial_wildcards:
        print("Partial wildcard actions (allowed):")
        for s in report.partial_wildcards:
            print(f"  - {s}")
    if report.failures:
        print(f"FAILED: {len(report.failures)} problem(s):", file=sys.stderr)
        for s in report.failures:
            print(f"  - {s}", file=sys.stderr)
        return 1
    print("check-iam: OK (no wildcard actions; every Resource \"*\" has a reason)")
    return 0


# --------------------------------------------------------------------------------------------
# Self-test: the check must reject what it promises to reject.
# --------------------------------------------------------------------------------------------
SELF_TEST_CASES = {
    "star action": ("""
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: "*"
              Resource: !Sub "arn:${AWS::Partition}:s3:::b/*"
""", 1, 'Action "*"'),
    "service wildcard": ("""
Resources:
  F:
    Type: AWS::Serverless::StateMachine
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [s3:GetObject, "cloudformation:*"]
              Resource: !GetAtt B.Arn
""", 1, '"cloudformation:*"'),
    "star resource without reason": ("""
Resources:
  R:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              # this comment gives no reason in the agreed form
              - Effect: Allow
                Action: xray:PutTraceSegments
                Resource: "*"
""", 1, "without a reason"),
    "policy template": ("""
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - S3CrudPolicy: {BucketName: !Ref B}
""", 1, "SAM policy template"),
    "stack writes without the transform grant": ("""
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [cloudformation:CreateChangeSet, cloudformation:ExecuteChangeSet]
              Resource: !Sub "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/*/*"
""", 1, "aws:transform/*"),
    "stack writes with the transform grant": ("""
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: cloudformation:UpdateStack
              Resource: !Sub "arn:${AWS::Partition}:cloudformation:${AWS::Region}:${AWS::AccountId}:stack/*/*"
            - Effect: Allow
              Action: cloudformation:CreateChangeSet
              Resource: !Sub "arn:${AWS::Partition}:cloudformation:${AWS::Region}:aws:transform/*"
""", 0, "OK"),
    "rule target without dead letters": ("""
Resources:
  R:
    Type: AWS::Events::Rule
    Properties:
      Targets:
        - Id: deploy
          Arn: !Ref M
""", 1, "no DeadLetterConfig"),
    "rule targets with dead letters or a reason": ("""
Resources:
  R:
    Type: AWS::Events::Rule
    Properties:
      Targets:
        - Id: deploy
          Arn: !Ref M
          DeadLetterConfig: {Arn: !GetAtt Q.Arn}
        # no dead letters: the fallback poll does what a lost event would have done.
        - Id: wake
          Arn: !Ref W
""", 0, "OK"),
    "star resource with reason": ("""
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            # why *: X-Ray has no resource-level permissions.
            - Effect: Allow
              Action: [xray:PutTraceSegments, "kms:GenerateDataKey*"]
              Resource: "*"
            - Effect: Allow
              Action: sns:Publish
              Resource: "*"  # why *: test of the trailing form
  K:
    Type: AWS::KMS::Key
    Properties:
      KeyPolicy:
        Statement:
          - Effect: Allow
            Principal: {AWS: !Sub "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
            Action: "kms:*"
            # why *: a key policy's "*" is the key itself.
            Resource: "*"
""", 0, "OK"),
}


def self_test() -> int:
    import contextlib
    import io

    bad = 0
    with tempfile.TemporaryDirectory() as d:
        for name, (src, want_rc, want_text) in SELF_TEST_CASES.items():
            p = os.path.join(d, "t.yaml")
            with open(p, "w", encoding="utf-8") as f:
                f.write(src)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = run([p])
            ok = rc == want_rc and want_text in (out.getvalue() + err.getvalue())
            print(f"self-test {'ok  ' if ok else 'FAIL'} {name} (exit {rc}, expected {want_rc})")
            if not ok:
                bad += 1
                print(out.getvalue() + err.getvalue())
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    args = argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if args and args[0] == "--self-test":
        rc = self_test()
        if rc:
            return rc
        args = args[1:]
        if not args:
            return 0
    return run(args or ["template.yaml"])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
