"""Talking JSON to a `perseus serve` from the tests."""

import json
import urllib.request
from typing import Any, Optional, Union


def call(base: str, method: str, path: str, body: Optional[Union[bytes, Any]] = None,
         content_type: str = "application/json") -> Any:
    """One request; returns the decoded JSON reply (None for an empty one)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")
