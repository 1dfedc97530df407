#!/usr/bin/env bash
# Fails if a file of the repository cites a document that is not in it: the project's rules live
# in docs/style.md, and a comment that points at a file a reader cannot open explains nothing.
# Run by ctest (tests/CMakeLists.txt) over the files git tracks, or every file when there is no git.
#
#   tests/check_citations.sh [repository root]
set -euo pipefail

ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
cd "$ROOT"
# Documents that were never part of this repository; the patterns are split so this file does
# not match itself.
patterns=('STYLE''\.md' 'DESIGN''\.md' '\.\./''shared' 'shared/''(reference|research)/')

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard | grep -v '^build/')
else
  mapfile -t files < <(find . -type f -not -path './build/*' -not -path './.git/*' | sed 's|^\./||')
fi

status=0
for pattern in "${patterns[@]}"; do
  if hits=$(printf '%s\0' "${files[@]}" | xargs -0 grep -nE -- "$pattern" 2>/dev/null); then
    echo "cites a file outside the repository (put the reason itself, or docs/style.md):"
    echo "$hits"
    status=1
  fi
done
[[ $status -eq 0 ]] && echo "no file cites a document outside the repository (${#files[@]} files checked)"
exit $status
