#!/usr/bin/env bash
# Writes the identities of the tenants' store (up.sh) into folder $1, once (kept while the
# folder is):
#   credentials.json  {"admin": {accessKey, secretKey}, "team-a": {accessKey, secretKey,
#                     bucket}, "team-b": {…}}: random keys, mode 0600, read by the tests;
#   s3.json           SeaweedFS's `-s3.config`: the admin may do anything; each team's keys
#                     carry an S3 policy document (the one docs/operations.md gives platform
#                     teams for AWS) that allows listing, reading, writing and deleting in its
#                     own bucket and nothing else.
set -euo pipefail

dir=$1
mkdir -p "$dir"
if [ -s "$dir/credentials.json" ] && [ -s "$dir/s3.json" ]; then exit 0; fi
umask 077
python3 - "$dir" <<'PY'
import json, secrets, sys

folder = sys.argv[1]
teams = {"team-a": "ciclo-team-a", "team-b": "ciclo-team-b"}


def keys(name):
    return {"accessKey": f"{name.upper().replace('-', '')}{secrets.token_hex(6).upper()}",
            "secretKey": secrets.token_urlsafe(30)}


def policy(bucket):
    # What ciclo's workloads do in a team's store: list a prefix, get, put (multipart for
    # large files), delete (retention); not a bucket's configuration, not another bucket.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:ListBucket"],
             "Resource": [f"arn:aws:s3:::{bucket}"]},
            {"Effect": "Allow",
             "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject",
                        "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
             "Resource": [f"arn:aws:s3:::{bucket}/*"]},
        ],
    }


credentials = {"admin": keys("admin")}
identities = [{"name": "admin", "credentials": [credentials["admin"]],
               "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]
policies = []
for team, bucket in teams.items():
    team_keys = keys(team)
    credentials[team] = dict(team_keys, bucket=bucket)
    identities.append({"name": team, "credentials": [team_keys],
                       "policyNames": [f"{team}-store"]})
    policies.append({"name": f"{team}-store", "content": json.dumps(policy(bucket))})

with open(f"{folder}/s3.json", "w") as f:
    json.dump({"identities": identities, "policies": policies}, f, indent=2)
with open(f"{folder}/credentials.json", "w") as f:
    json.dump(credentials, f, indent=2)
PY
