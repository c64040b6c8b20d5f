"""Loads N users into a SCIM server with POST /Users, 8 at a time (same for both servers)."""
import concurrent.futures
import json
import sys
import urllib.request
import uuid

base, token, count = sys.argv[1], sys.argv[2], int(sys.argv[3])


def post(i: int) -> None:
    body = {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": f"user{i}@example.com",
        "externalId": str(uuid.UUID(int=0x3F2504E04F8941D39A0C000000000000 + i)),
        "active": True,
        "displayName": f"User {i}",
        "emails": [{"value": f"user{i}@example.com", "type": "work", "primary": True}],
    }
    request = urllib.request.Request(
        f"{base}/Users",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.status == 201, response.status


with concurrent.futures.ThreadPoolExecutor(8) as pool:
    list(pool.map(post, range(count)))
