#!/usr/bin/env bash
# CI of the example third-party plugin genkit-ect, in the current Python environment (genkit and
# pytest already installed): install it, see genkit find it, train EDM -> ECT from the command
# line, run its own tests, put it in a bench, uninstall it and see it gone. Leaves the environment
# without genkit-ect, also when a step fails. About a minute or two on 2 CPU cores.
#
#   bash examples/genkit-ect/ci.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
cleanup() {
    pip uninstall -y -q genkit-ect >/dev/null 2>&1 || true
    rm -rf "$work" "$here/build" "$here/genkit_ect.egg-info"  # what pip's in-tree build leaves
}
trap cleanup EXIT
export OMP_NUM_THREADS=1 COLUMNS=200  # tiny MLPs: one thread is as fast as two on a shared machine
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

cd "$root"
if pip show -q genkit-ect >/dev/null 2>&1; then fail "genkit-ect is installed already; uninstall it first"; fi

step "install: pip install ./examples/genkit-ect"
pip install -q ./examples/genkit-ect
python - <<'EOF' || fail "genkit_ect should be imported from the installed package"
import pathlib, genkit_ect
assert "site-packages" in pathlib.Path(genkit_ect.__file__).parts, genkit_ect.__file__
EOF

step "genkit plugins lists it"
listing="$(genkit plugins)"  # captured first: grep -q closing the pipe early would fail it under pipefail
grep -q "genkit_ect" <<<"$listing" || fail "genkit plugins does not list genkit_ect"
genkit plugins --json | python -c '
import json, sys
info = next((p for p in json.load(sys.stdin) if p["name"] == "ect"), None)
assert info is not None, "no plugin ect"
assert info["distribution"] == "genkit-ect" and not info["builtin"] and not info["error"], info
assert info["registers"] == {"methods": ["ect"]}, info
print("ect:", info["distribution"], info["version"], info["registers"])'

step "genkit train --method ect --preset toy2d --teacher RUN"
tiny=(--set network.width=64 --set network.depth=2 --set train.batch_size=128 --set train.log_every=10 --set train.checkpoint_every=20)
genkit train --method edm --preset toy2d --steps 30 --out "$work/edm" "${tiny[@]}"
genkit train --method ect --preset toy2d --teacher "$work/edm" --steps 40 --out "$work/ect" "${tiny[@]}" \
    --set train.eval_every=20 --set train.eval_samples=500
grep -qF "teacher = {name = \"edm-heun\", run = \"$work/edm\"}" "$work/ect/config.toml" || fail "the ECT run does not record its EDM run"
python - "$work/ect/metrics.jsonl" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
logs = [r for r in records if "loss" in r]
evals = [r for r in records if "eval" in r]
assert logs[-1]["step"] == 40 and [r["stage"] for r in logs] == [1, 3, 5, 7], logs  # 8 stages of 5 steps
assert len(evals) == 2 and all(r["eval"]["swd"] == r["eval"]["swd"] for r in evals), evals
print("ECT trained: stages", [r["stage"] for r in logs], "one-step swd", [round(r["eval"]["swd"], 3) for r in evals])
EOF
genkit sample "$work/ect" --steps 1 --num 500

step "the package's own tests"
(cd "$work" && python -m pytest -q -p no:cacheprovider "$here/tests")

step "genkit bench cd-vs-ict with an ECT run (teacher: the bench's EDM run)"
genkit bench cd-vs-ict --preset toy2d --out "$work/bench" \
    --set steps=20 --set batch_size=64 --set eval_samples=300 --set curve_every=0 \
    --set 'runs.ect={method = "ect", label = "ECT", teacher = "edm"}' --set 'compare=["ict", "ect"]'
grep -Eq "^\| ECT( †)? \| 1 \(1\) \|" "$work/bench/report.md" || fail "the bench report has no ECT row"  # † at 20 steps: not learning yet
grep -q "CD and ECT are shown without and with" "$work/bench/report.md" || fail "the bench report does not count ECT's teacher"
python - "$work/bench/results.json" <<'EOF'
import json, sys
results = json.load(open(sys.argv[1]))
ect = [r for r in results["runs"] if r["name"] == "ect"]
assert ect and ect[0]["nfe_teacher_training"] > 0 and ect[0]["step"] == 20, ect
assert "ECT" in results["verdict"]["sentence"], results["verdict"]
print("bench:", results["verdict"]["sentence"])
EOF

step "uninstall: pip uninstall -y genkit-ect"
pip uninstall -y -q genkit-ect
listing="$(genkit plugins)"
if grep -q "genkit_ect" <<<"$listing"; then fail "genkit plugins still lists genkit_ect"; fi
genkit plugins --json | python -c 'import json, sys; assert all(p["name"] != "ect" for p in json.load(sys.stdin))'
if python -c "import genkit_ect" 2>/dev/null; then fail "genkit_ect is still importable"; fi
set +e
output="$(genkit train --method ect --preset toy2d --steps 2 --out "$work/gone" 2>&1)"
status=$?
set -e
echo "$output"
[ "$status" -ne 0 ] || fail "genkit train --method ect should fail once genkit-ect is gone"
[ "$(printf '%s\n' "$output" | grep -c .)" -eq 1 ] || fail "expected a one-line error"
grep -q "'ect'" <<<"$output" || fail "the error does not name ect"

step "genkit-ect CI passed"
