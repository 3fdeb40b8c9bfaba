"""Runs scim2-tester against a tracker's /scim/v2 and fails on any check
that is not in the supported subset's allowance.

    python scim_check.py BASE_URL TOKEN

Every check scim2-tester makes is printed with its status. The run fails
(exit 1) when one fails, unless its title names a part of SCIM the tracker
does not offer (listed in NOT_OFFERED, each with why); those are printed
as skipped, with the reason.
"""

import sys
import time

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

# Parts of SCIM 2.0 the tracker does not offer, matched against what
# scim2-tester names in a failed check: (substring, why).
NOT_OFFERED = [
    ("'externalId'", "Skein keeps no externalId: identity providers match users by userName"),
    ('cannot add "externalId"', "Skein keeps no externalId: identity providers match users by userName"),
    ('cannot replace "externalId"', "Skein keeps no externalId: identity providers match users by userName"),
    ("search_with_attributes", "searching with POST .search is not offered: list with GET and a filter"),
    ("userName cannot change", "a user name is fixed: it is how colleagues and history know the user"),
    ("for 'userName'", "a user name is fixed: it is how colleagues and history know the user"),
    ("Skein keeps users and departments", "nothing is deleted: a user is deactivated (active=false)"),
    ("department's path cannot change", "a department is renamed by making the new one and moving its members"),
    ("for 'emails'", "one work e-mail address is kept, and its type is always work"),
    ("for 'phoneNumbers'", "one work phone number is kept, and its type is always work"),
    ("for 'members'", "a member's display is the user name, which the tracker fills in"),
    ("remove attribute 'name'", "the display name falls back to the user name; it is never empty"),
    ("remove attribute 'displayName'", "the display name falls back to the user name; it is never empty"),
    ("remove attribute 'active'", "a user is always active or not: deactivate with active=false"),
]


class PatientClient(Client):
    """Waits out the tracker's per-app rate limit (429 with Retry-After), as
    an identity provider does, instead of counting it as a failed check."""

    def request(self, *args, **kwargs):
        for _ in range(20):
            r = super().request(*args, **kwargs)
            if r.status_code != 429:
                return r
            time.sleep(float(r.headers.get("retry-after", "1")))
        return r


def main():
    base, token = sys.argv[1], sys.argv[2]
    http = PatientClient(base_url=base, headers={"Authorization": "Bearer " + token}, timeout=10)
    scim = SyncSCIMClient(http)
    results = check_server(scim)
    failed = skipped = 0
    for r in results:
        title = getattr(r, "title", "") or ""
        desc = getattr(r, "description", "") or ""
        reason = getattr(r, "reason", "") or ""
        status = r.status
        label = status.name
        if status == Status.ERROR:
            why = next((w for s, w in NOT_OFFERED if s in title or s in reason), None)
            if why:
                label = "SKIPPED (%s)" % why
                skipped += 1
            else:
                failed += 1
        print("%-8s %s%s" % (label, title, (": " + reason) if reason else ""))
    print("scim2-tester: %d checks, %d failed, %d skipped as not offered" % (len(results), failed, skipped))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
