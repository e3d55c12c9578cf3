"""Credentials from each source the tap offers, against moto with IAM enforced."""

import json

import boto3
import pytest

from tap_mparticle.storage import StorageError
from tests.support.files import error_lines
from tests.support.s3 import strict_moto
from tests.support.tap import run_cli, run_tap

ALLOW_ASSUME = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
TRUST_ANYONE = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
ALLOW_S3 = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


def policy(statement: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


SETUP_ACTIONS = 7  # the unsigned calls `reader_and_role` makes; IAM is enforced after them


def reader_and_role(endpoint: str, bucket: str, user_statement: dict, mpid: int):
    """Set up a user `reader` (allowed `user_statement`), a role `mp-reader` allowed S3,
    and a bucket holding one event; return the user's access key and the role's ARN."""
    setup = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIASETUP00000000000",
        "aws_secret_access_key": "setup",
    }
    iam = boto3.client("iam", **setup)
    s3 = boto3.client("s3", **setup)
    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    iam.put_user_policy(UserName="reader", PolicyName="user", PolicyDocument=policy(user_statement))
    role = iam.create_role(RoleName="mp-reader", AssumeRolePolicyDocument=policy(TRUST_ANYONE))
    iam.put_role_policy(RoleName="mp-reader", PolicyName="s3", PolicyDocument=policy(ALLOW_S3))
    s3.create_bucket(Bucket=bucket)
    event = {"events": [{"event_type": "uninstall", "data": {}}], "mpid": str(mpid)}
    s3.put_object(Bucket=bucket, Key="2024-05-01/app_1.txt", Body=json.dumps(event).encode())
    return key, role["Role"]["Arn"]


def test_reads_through_the_assumed_role_where_the_user_alone_is_denied(tmp_path):
    with strict_moto(no_auth_actions=SETUP_ACTIONS) as endpoint:
        key, role_arn = reader_and_role(endpoint, "mp-forwarding-role", ALLOW_ASSUME, mpid=7)
        config = {
            "bucket_url": "s3://mp-forwarding-role",
            "aws_endpoint_url": endpoint,
            "aws_region": "us-east-1",
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }

        as_user = run_cli(config, tmp_path)
        assert as_user.returncode == 1
        assert "AccessDenied" in as_user.stderr

        with_role = {**config, "aws_role_arn": role_arn, "aws_external_id": "ext-1"}
        as_role = run_cli(with_role, tmp_path)
        assert as_role.returncode == 0, as_role.stderr[-2000:]
        assert [r["mpid"] for r in as_role.records("events")] == [7]
        assert key["SecretAccessKey"] not in as_role.stderr


def test_profile_and_session_token_supply_credentials(tmp_path, monkeypatch):
    with strict_moto(no_auth_actions=SETUP_ACTIONS) as endpoint:
        reader = {"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"], "Resource": "*"}
        key, role_arn = reader_and_role(endpoint, "mp-forwarding-profile", reader, mpid=9)
        base = {"bucket_url": "s3://mp-forwarding-profile", "aws_endpoint_url": endpoint}

        credentials = tmp_path / "credentials"
        credentials.write_text(
            "[mparticle]\n"
            f"aws_access_key_id = {key['AccessKeyId']}\n"
            f"aws_secret_access_key = {key['SecretAccessKey']}\n"
            "region = us-east-1\n"
        )
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
        by_profile = run_tap({**base, "aws_profile": "mparticle"})
        assert [r["mpid"] for r in by_profile.records("events")] == [9]

        # Temporary credentials work only with their session token.
        temporary = temporary_credentials(endpoint, key, role_arn, "token-test")
        with_token = {
            **base,
            "aws_region": "us-east-1",
            "aws_access_key_id": temporary["AccessKeyId"],
            "aws_secret_access_key": temporary["SecretAccessKey"],
            "aws_session_token": temporary["SessionToken"],
        }
        assert [r["mpid"] for r in run_tap(with_token).records("events")] == [9]
        without = {k: v for k, v in with_token.items() if k != "aws_session_token"}
        with pytest.raises(StorageError, match="mp-forwarding-profile"):
            run_tap(without)


def temporary_credentials(
    endpoint: str, key: dict[str, str], role_arn: str, session: str
) -> dict[str, str]:
    """Assume the role with the reader's key: temporary key, secret and session token."""
    sts = boto3.client(
        "sts",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    return sts.assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]


def test_credentials_pasted_with_surrounding_whitespace_are_trimmed(tmp_path):
    """A key, secret or token with a pasted newline or space signs requests all the same."""
    with strict_moto(no_auth_actions=SETUP_ACTIONS) as endpoint:
        reader = {"Effect": "Allow", "Action": ["s3:*", "sts:AssumeRole"], "Resource": "*"}
        key, role_arn = reader_and_role(endpoint, "mp-forwarding-padded", reader, mpid=5)
        credentials = temporary_credentials(endpoint, key, role_arn, "padded")
        config = {
            "bucket_url": "s3://mp-forwarding-padded",
            "aws_endpoint_url": endpoint,
            "aws_region": "us-east-1",
            "aws_access_key_id": f"  {credentials['AccessKeyId']}\n",
            "aws_secret_access_key": f"{credentials['SecretAccessKey']} \n",
            "aws_session_token": f"\t{credentials['SessionToken']}\r\n",
        }
        run = run_cli(config, tmp_path)
        assert run.returncode == 0, run.stderr[-2000:]
        assert [r["mpid"] for r in run.records("events")] == [5]
        assert credentials["SecretAccessKey"] not in run.stderr
        assert credentials["SessionToken"] not in run.stderr


def test_a_role_the_user_may_not_assume_is_one_line(tmp_path):
    """AccessDenied from STS is one line naming the role, as a refused listing is."""
    with strict_moto(no_auth_actions=SETUP_ACTIONS) as endpoint:
        key, role_arn = reader_and_role(endpoint, "mp-forwarding-denied", ALLOW_S3, mpid=3)
        config = {
            "bucket_url": "s3://mp-forwarding-denied",
            "aws_endpoint_url": endpoint,
            "aws_region": "us-east-1",
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
            "aws_role_arn": role_arn,
        }
        run = run_cli(config, tmp_path)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (error,) = error_lines(run.stderr)
    assert f"cannot assume aws_role_arn {role_arn} at {endpoint}: AccessDenied" in error
    assert key["SecretAccessKey"] not in run.stderr
