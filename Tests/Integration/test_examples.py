"""The runnable examples in docs/examples/ work against the real stack."""
import os
import shutil
import subprocess

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "examples")


def run(stack, command):
    with open(os.environ["KG_ADMIN_KEY_FILE"]) as f:
        admin = f.read().strip()
    env = dict(os.environ, KG_URL=stack.base, KG_CA=stack.ca, KG_ADMIN_KEY=admin, NODE_EXTRA_CA_CERTS=stack.ca)
    env.pop("REQUESTS_CA_BUNDLE", None)
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_curl_example(stack):
    assert "after revocation the key gets 401" in run(stack, ["bash", os.path.join(EXAMPLES, "curl.sh")])


def test_python_example(stack):
    assert "old key during grace: True; new key: True" in run(stack, ["python3", os.path.join(EXAMPLES, "python_example.py")])


def test_javascript_example(stack):
    if shutil.which("node") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed")
        pytest.skip("node is not installed")
    assert "is completed" in run(stack, ["node", os.path.join(EXAMPLES, "javascript_example.mjs")])
