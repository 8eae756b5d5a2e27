"""The bucket itself refuses a reader's writes: the IAM policies docs/templates.md gives, enforced by moto."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from synctools import new_store

import sync
from localfirst.errors import ReadOnly, RemoteError
from localfirst.templates import add_template, get_template

DOC = Path(__file__).resolve().parent.parent / "docs" / "templates.md"


def documented_policy(role: str) -> dict[str, Any]:
    """The IAM policy docs/templates.md gives for ``role`` (reader or writer), for bucket "bucket", prefix "acme"."""
    text = DOC.read_text()
    found = re.search(rf"<!-- iam-{role} -->\n```json\n(.*?)\n```", text, re.S)
    assert found, f"docs/templates.md has no {role} policy"
    return dict(json.loads(found.group(1).replace("BUCKET", "bucket").replace("PREFIX", "acme")))


# Setup requests made before moto starts checking credentials: the bucket, then per user
# create_user, put_user_policy and create_access_key.
SETUP_REQUESTS = 1 + 2 * 3


def test_the_bucket_refuses_a_readers_write(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    import boto3
    from moto import mock_aws
    from moto.core import set_initial_no_auth_action_count

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "setup")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "setup")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    @set_initial_no_auth_action_count(SETUP_REQUESTS)
    @mock_aws
    def scenario() -> None:
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="bucket")
        iam = boto3.client("iam", region_name="us-east-1")
        profiles = []
        for role in ("writer", "reader"):
            iam.create_user(UserName=role)
            iam.put_user_policy(UserName=role, PolicyName="team-library",
                                PolicyDocument=json.dumps(documented_policy(role)))
            key = iam.create_access_key(UserName=role)["AccessKey"]
            profiles.append(f"[{role}]\naws_access_key_id = {key['AccessKeyId']}\n"
                            f"aws_secret_access_key = {key['SecretAccessKey']}\n")
        credentials = isolated_home / "aws-credentials"
        credentials.write_text("\n".join(profiles))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

        owner = new_store(isolated_home / "owner.db")
        made = sync.create_team(owner, "acme", "s3://bucket/acme", profile="writer", region="us-east-1")
        add_template(owner, "acme/house-style", prompt="Write like us: $input")
        sync.sync(owner, "acme")

        # A reader joins and syncs with read-only credentials: everything works, nothing is written.
        reader = new_store(isolated_home / "reader.db")
        sync.join_team(reader, "acme", "s3://bucket/acme", trust=made.fingerprint, read_only=True,
                       profile="reader", region="us-east-1")
        sync.sync(reader, "acme")
        assert get_template(reader, "acme/house-style").prompt == "Write like us: $input"
        with pytest.raises(ReadOnly):
            add_template(reader, "acme/mine", prompt="x")

        # Someone with the reader's credentials who forces a write (a machine that joined as a
        # writer, listed by the owner) is refused by the bucket itself.
        forced = new_store(isolated_home / "forced.db")
        joined = sync.join_team(forced, "acme", "s3://bucket/acme", trust=made.fingerprint, profile="reader",
                                region="us-east-1")
        assert joined.config.writer is not None
        sync.team_writers(owner, "acme", add=joined.config.writer)
        sync.sync(forced, "acme")
        add_template(forced, "acme/forced", prompt="should never land")
        with pytest.raises(RemoteError, match="(?i)denied|forbidden"):
            sync.sync(forced, "acme")
        raw = sync.open_remote(sync.get_remote(forced, "acme"))
        with pytest.raises(RemoteError, match="(?i)denied|forbidden"):
            raw.put("acme-was-here", b"x", sha256="0" * 64, create_only=True)
        # The owner's view is untouched by the attempt.
        sync.sync(owner, "acme")
        assert [r[0] for r in owner.conn.execute("SELECT name FROM templates ORDER BY name")] == ["house-style"]

    scenario()
