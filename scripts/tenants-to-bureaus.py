#!/usr/bin/env python3
"""Turns data/tenants-haidian.yaml into Bureau manifests (manifests/samples/bureaus-haidian.yaml).

The tenants file is a flat list of flow mappings, one per line, so it is read without a YAML
library: each `- {key: value, quota: {...}}` line becomes one Bureau.
"""
import re
import sys

FIELD = re.compile(r'(\w+): ("[^"]*"|\{[^}]*\}|[^,}]+)')


def parse(line):
    body = line.strip()[2:].strip()[1:-1]
    out = {}
    for key, value in FIELD.findall(body):
        value = value.strip()
        if value.startswith('{'):
            out[key] = parse('- ' + value)
        else:
            out[key] = value.strip('"')
    return out


def main(path):
    print("# Generated from data/tenants-haidian.yaml by scripts/tenants-to-bureaus.py; do not edit.")
    print("# The Haidian sample tenants as Bureau objects: kubectl apply -f this file.")
    for line in open(path, encoding="utf-8"):
        if not line.strip().startswith("- {"):
            continue
        t = parse(line)
        code = t["code"]
        print("---")
        print("apiVersion: zhengyun.io/v1alpha1")
        print("kind: Bureau")
        print("metadata:")
        print(f"  name: {code}")
        print("spec:")
        print(f"  displayName: {t['displayName']}")
        print(f"  kind: {t['kind']}")
        if "parent" in t:
            print(f"  parent: {t['parent']}")
        print("  quota:")
        for resource, amount in t["quota"].items():
            print(f'    {resource}: "{amount}"')
        print(f"  adminGroups: [{code}-admins]")
        print(f"  viewerGroups: [{code}-viewers]")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/tenants-haidian.yaml")
