"""TemplateURL resolution against the emulator's own S3.

AWS behaviour restored: CloudFormation accepts a TemplateURL naming an S3 object in
virtual-hosted style (``https://<bucket>.s3[.<region>].amazonaws.com/<key>``) or path style
(``https://s3[.<region>].amazonaws.com/<bucket>/<key>``). moto only understands path style
for hosts containing "localhost", so a path-style URL on the emulator's own endpoint
(``http://127.0.0.1:<port>/<bucket>/<key>``) failed with NoSuchBucket. Any host that is not an
AWS S3 host is now read path style (the object lives in this emulator's S3 either way), keys
are URL-decoded, and a missing object answers CloudFormation's ValidationError instead of an
S3 error leaking through CloudFormation.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlparse

from moto.cloudformation.exceptions import ValidationError

_VIRTUAL_HOSTED = re.compile(
    r"^(?P<bucket>.+?)\.s3(?:[.-][a-z0-9.-]+)?\.amazonaws\.com(?:\.cn)?$"
)


def bucket_and_key(template_url: str) -> tuple[str, str]:
    parts = urlparse(template_url)
    host = (parts.hostname or "").lower()
    path = unquote(parts.path).lstrip("/")
    if not host:
        raise ValidationError(message="TemplateURL must be a supported URL.")
    is_aws = host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn")
    match = _VIRTUAL_HOSTED.match(host) if is_aws else None
    if match and not host.startswith(("s3.", "s3-")):
        bucket, key = match.group("bucket"), path
    else:
        bucket, _, key = path.partition("/")
    if not bucket or not key:
        raise ValidationError(message="TemplateURL must be a supported URL.")
    return bucket, key


def get_stack_from_s3_url(template_url: str, account_id: str, partition: str) -> str:
    from moto.s3.exceptions import S3ClientError
    from moto.s3.models import s3_backends

    bucket, key = bucket_and_key(template_url)
    try:
        obj = s3_backends[account_id][partition].get_object(bucket, key)
    except S3ClientError as err:
        code = getattr(err, "code", None) or getattr(err, "error_type", "")
        if "Bucket" in str(code):
            raise ValidationError(message="S3 error: The specified bucket does not exist")
        raise ValidationError(message="S3 error: The specified key does not exist.")
    if obj is None:
        raise ValidationError(message="S3 error: The specified key does not exist.")
    return obj.value.decode("utf-8")


def install() -> None:
    import moto.cloudformation.models as models
    import moto.cloudformation.responses as responses
    import moto.cloudformation.utils as utils

    for module in (models, responses, utils):
        module.get_stack_from_s3_url = get_stack_from_s3_url  # type: ignore[attr-defined]
