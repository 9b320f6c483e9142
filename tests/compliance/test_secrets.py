"""Secrets come only from the environment or owner-only files, and never show in repr/str."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voicebot.compliance.secrets import Secret, SecretError, check_secret_file, read_secret


def test_environment_variable_wins(tmp_path: Path) -> None:
    assert read_secret(env="TRUNK_PW", environ={"TRUNK_PW": "s3cret"}) == "s3cret"
    with pytest.raises(SecretError, match="TRUNK_PW is not set"):
        read_secret(env="TRUNK_PW", environ={})
    with pytest.raises(SecretError, match="TRUNK_PW is empty"):
        read_secret(env="TRUNK_PW", environ={"TRUNK_PW": ""})


def test_owner_only_file_is_read_and_falls_back_from_env(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("tok-123\n")
    os.chmod(path, 0o600)
    assert read_secret(file=path) == "tok-123"
    assert read_secret(env="MISSING", file=path, environ={}) == "tok-123"
    os.chmod(path, 0o400)
    assert check_secret_file(path) == path


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644, 0o660])
def test_group_or_world_accessible_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    path.write_text("tok")
    os.chmod(path, mode)
    with pytest.raises(SecretError, match=rf"mode {mode:04o}.*chmod 600"):
        read_secret(file=path)


def test_missing_empty_and_odd_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="does not exist"):
        read_secret(file=tmp_path / "nope")
    with pytest.raises(SecretError, match="not a regular file"):
        check_secret_file(tmp_path)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    os.chmod(empty, 0o600)
    with pytest.raises(SecretError, match="is empty"):
        read_secret(file=empty)
    with pytest.raises(SecretError, match="name an environment variable or a secret file"):
        read_secret()


def test_secret_wrapper_hides_its_value() -> None:
    secret = Secret("hunter2")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}" + repr([secret])
    assert secret.reveal() == "hunter2" and secret == Secret("hunter2") and secret != Secret("other")
