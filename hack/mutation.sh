#!/usr/bin/env bash
# Mutation testing of the modules whose numbers gate a release, with mutmut.
#
#   hack/mutation.sh            all of them (make mutation)
#   MODULES="ml/metrics.py" hack/mutation.sh
#
# mutmut looks for the package under ./, src/ or source/, and this project keeps it in
# runtime/; so the run happens in a scratch copy (.mutation/) laid out as src/tekton_mlops.
# The copy also keeps the mutants away from the work tree that other tests import.
# Only the fast unit tests that cover these modules run against each mutant.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
BIN=$(cd "${BIN:-.venv/bin}" && pwd)
SCRATCH=${SCRATCH:-.mutation}
MODULES=${MODULES:-"ml/metrics.py serving/load.py steps/check_slo.py digests.py conditions.py results.py"}
TESTS=${TESTS:-"tests/unit/test_metrics.py tests/unit/test_load.py tests/unit/test_check_slo.py
tests/unit/test_digests.py tests/unit/test_conditions.py tests/unit/test_results.py"}

rm -rf "$SCRATCH"
mkdir -p "$SCRATCH/src"
cp -r runtime/tekton_mlops "$SCRATCH/src/"
mkdir -p "$SCRATCH/tests/unit"
cp tests/__init__.py tests/conftest.py tests/kube_api_double.py "$SCRATCH/tests/"
cp tests/unit/__init__.py tests/unit/delay_endpoint.py $TESTS "$SCRATCH/tests/unit/"
find "$SCRATCH" -name __pycache__ -prune -exec rm -rf {} +

{
    # The project's pytest settings (warnings are errors), then mutmut's.
    sed -n '/^\[tool:pytest\]/,/^\[/p' setup.cfg | sed '$d'
    echo
    echo "[mutmut]"
    echo "source_paths = src/tekton_mlops"
    echo "only_mutate ="
    for module in $MODULES; do echo "    src/tekton_mlops/$module"; done
    echo "pytest_add_cli_args_test_selection ="
    for test in $TESTS; do echo "    $test"; done
    echo "pytest_add_cli_args = -p no:cacheprovider"
    # A mutant that makes the load generator loop forever is stopped at 5 times the
    # tests' own time (mutmut's default, 15, makes each such mutant cost minutes).
    echo "timeout_multiplier = 5.0"
} > "$SCRATCH/setup.cfg"

cd "$SCRATCH"
echo "mutmut: $MODULES (log in $SCRATCH/mutmut.log)"
"$BIN/mutmut" run --max-children "${JOBS:-2}" > mutmut.log 2>&1 || {
    tail -c 3000 mutmut.log
    exit 1
}
# Killed over all mutants, per module; `--survivors` lists the others (mutmut show NAME).
"$BIN/python" "$ROOT/hack/mutation_score.py" mutants ${MIN_SCORE:+--min "$MIN_SCORE"}
