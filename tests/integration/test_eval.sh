#!/bin/sh
# test_eval.sh — evaluation on real data: the fixture classifier (tests/fixtures/fmnist_mlp) as
# ONNX, run on the first 2,000 Fashion-MNIST test images (eval_data.py), through the command
# and through the service.
#
# - `modelpress eval` must find the accuracy NumPy finds in float64 (1,790 of 2,000 here), to
#   within one near-tie sample.
# - `modelpress compress --dataset` with int8 weights must keep accuracy within 1 point, agree
#   with the original on at least 98 % of samples with an output SNR of at least 30 dB; with 95 %
#   of the weights pruned, the evaluation must see the damage (accuracy and agreement below
#   50 %). Every figure of DESIGN.md's evaluation block must be there.
# - The service: POST /datasets keeps the .npz (201, its samples, shape and classes); a job
#   naming it in evaluate.dataset_id, and one sending the file along, succeed with the same
#   figures in the job's metrics and in its report as the command gives; an evaluate block for
#   a safetensors model is 400.
# - An opset-6 graph of the same network evaluates to the same accuracy; compressing it back
#   into ONNX is refused up front (exit 1, the reason, no file), into safetensors it works.
# Run by `make check`; by hand: top_builddir=build top_srcdir=. tests/integration/test_eval.sh
# Skips (77) when curl, python3-numpy, python3-onnx or dataset-fashion-mnist is missing.

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${MODELPRESSD:=$top_builddir/daemon/modelpressd}"
: "${MODELPRESS:=$top_builddir/cli/modelpress}"
. "$top_srcdir/tests/lib/common.sh"

mp_require_cmd curl
mp_require_numpy
"$MP_PYTHON" -c 'import onnx' 2>/dev/null || mp_skip "$MP_PYTHON cannot import onnx (apt-get install python3-onnx)"
[ -r /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] ||
    mp_skip "Fashion-MNIST is missing (apt-get install dataset-fashion-mnist)"
mp_tmpdir
T=$MP_TMP
N=2000

correct=$("$MP_PYTHON" "$top_srcdir/tests/integration/eval_data.py" "$T" "$N") ||
    mp_fail "eval_data.py failed"
mp_log "NumPy (float64): $correct of $N right"

# check FILE EXPR WHAT: fail unless the Python expression EXPR holds with d = the JSON in FILE.
check() {
    [ "$(mp_json "$1" "bool($2)")" = true ] || mp_fail "$3: $2 is false in $(head -c 900 "$1")"
}

# ---- the command ----

"$MODELPRESS" eval "$T/model.onnx" --dataset "$T/test.npz" --json >"$T/eval.json" ||
    mp_fail "modelpress eval failed"
check "$T/eval.json" "d['samples'] == $N and d['outputs_per_sample'] == 10 and d['batch'] == 32" \
    "eval: what was run"
check "$T/eval.json" "abs(round(d['accuracy'] * $N) - $correct) <= 1" "eval: accuracy against NumPy's"
check "$T/eval.json" "0 < d['latency_ms'] < 1000 and 0 < d['latency_ms_b32'] < 1000" "eval: latencies"
mp_log "eval: accuracy $(mp_json "$T/eval.json" 'd["accuracy"]'), latency $(mp_json "$T/eval.json" 'd["latency_ms"]') ms"

echo '{"steps":[{"quantize":{"bits":8}}]}' >"$T/int8.json"
echo '{"steps":[{"prune":{"sparsity":0.95}}]}' >"$T/prune.json"
"$MODELPRESS" compress "$T/model.onnx" -r "$T/int8.json" -o "$T/int8.safetensors" \
    --dataset "$T/test.npz" --json >"$T/int8-report.json" || mp_fail "compress int8 --dataset failed"
E="d['evaluation']"
for k in "['before']['accuracy']" "['before']['latency_ms']" "['before']['latency_ms_b32']" \
    "['after']['accuracy']" "['after']['latency_ms']" "['after']['latency_ms_b32']" \
    "['agreement']" "['output_snr_db']" "['speedup']" "['speedup_b32']"; do
    check "$T/int8-report.json" "isinstance($E$k, float) and $E$k > 0" "int8: $k"
done
before=$(mp_json "$T/eval.json" 'd["accuracy"]')
check "$T/int8-report.json" "$E['before']['accuracy'] == $before" "int8: the original's accuracy as eval gives it"
check "$T/int8-report.json" "abs($E['after']['accuracy'] - $E['before']['accuracy']) <= 0.01" "int8: accuracy kept"
check "$T/int8-report.json" "$E['agreement'] >= 0.98 and $E['output_snr_db'] >= 30" "int8: agreement and SNR"
check "$T/int8-report.json" "d['output_format'] == 'safetensors'" "int8: the report names the container written"
"$MODELPRESS" compress "$T/model.onnx" -r "$T/int8.json" -o "$T/int8.onnx" --json \
    >"$T/int8-onnx-report.json" || mp_fail "compress int8 to ONNX failed"
check "$T/int8-onnx-report.json" "d['output_format'] == 'onnx'" "int8 to ONNX: the report names the container written"
check "$T/int8-report.json" "d['n_compressed'] == 3 and [t['name'] for t in d['tensors']][:1] == ['fc1.weight']" \
    "int8: the pipeline's figures stay"
mp_log "int8: accuracy $(mp_json "$T/int8-report.json" "$E['after']['accuracy']"), agreement $(mp_json "$T/int8-report.json" "$E['agreement']"), SNR $(mp_json "$T/int8-report.json" "$E['output_snr_db']") dB, speed-up $(mp_json "$T/int8-report.json" "$E['speedup']")"

"$MODELPRESS" compress "$T/model.onnx" -r "$T/prune.json" -o "$T/prune.safetensors" \
    --dataset "$T/test.npz" --json >"$T/prune-report.json" || mp_fail "compress prune --dataset failed"
check "$T/prune-report.json" "$E['after']['accuracy'] < 0.5 and $E['agreement'] < 0.5" \
    "95 % pruned: the evaluation sees the damage"
mp_log "95 % pruned: accuracy $(mp_json "$T/prune-report.json" "$E['after']['accuracy']")"

# an opset-6 graph: evaluated like the current one; compressed into safetensors, but not back
# into its own graph (refused before any work, nothing written)
"$MODELPRESS" eval "$T/model_opset6.onnx" --dataset "$T/test.npz" --json >"$T/eval6.json" ||
    mp_fail "eval of the opset-6 graph failed"
check "$T/eval6.json" "d['accuracy'] == $before" "eval of the opset-6 graph: the same accuracy"
"$MODELPRESS" compress "$T/model_opset6.onnx" -r "$T/int8.json" -o "$T/int8-6.onnx" 2>"$T/old.err"
[ $? -eq 1 ] || mp_fail "compress of an opset-6 graph to ONNX: not exit 1"
grep -q "needs opset 7 or later.*this one has opset 6" "$T/old.err" ||
    mp_fail "no reason given: $(cat "$T/old.err")"
[ ! -e "$T/int8-6.onnx" ] || mp_fail "compress of an opset-6 graph to ONNX wrote a file"
"$MODELPRESS" compress "$T/model_opset6.onnx" -r "$T/int8.json" -o "$T/int8-6.safetensors" \
    2>"$T/old-st.err" || mp_fail "compress of an opset-6 graph to safetensors: $(cat "$T/old-st.err")"

"$MODELPRESS" compress "$top_srcdir/tests/fixtures/fmnist_mlp.safetensors" -r "$T/int8.json" \
    -o "$T/st.safetensors" --dataset "$T/test.npz" 2>"$T/st.err"
[ $? -eq 2 ] || mp_fail "compress --dataset of a safetensors model: not exit 2"
grep -q "is not ONNX" "$T/st.err" || mp_fail "no reason given: $(cat "$T/st.err")"

# ---- the service ----

mp_start_daemon "$T/state"
st=$(mp_http "$T/ds.json" -F "dataset=@$T/test.npz" "$MP_URL/datasets")
[ "$st" = 201 ] || mp_fail "POST /datasets: HTTP $st: $(head -c 600 "$T/ds.json")"
check "$T/ds.json" "d['samples'] == $N and d['x_shape'] == [$N, 28, 28] and d['has_labels'] and d['n_classes'] == 10 and d['format'] == 'npz' and d['name'] == 'test.npz'" \
    "POST /datasets: what the file holds"
check "$T/ds.json" "d['bytes'] == $(wc -c <"$T/test.npz")" "POST /datasets: its size"
ds_id=$(mp_json "$T/ds.json" 'd["id"]')
st=$(mp_http "$T/list.json" "$MP_URL/datasets")
check "$T/list.json" "d['total'] == 1 and d['datasets'][0]['id'] == '$ds_id'" "GET /datasets"

# wait_job ID: until the job has finished; leaves it in $T/job.json and fails unless it succeeded
wait_job() {
    i=0
    while :; do
        mp_http "$T/job.json" "$MP_URL/jobs/$1" >/dev/null
        state=$(mp_json "$T/job.json" 'd["state"]')
        case $state in
        queued | running) ;;
        succeeded) return 0 ;;
        *) mp_fail "job $1 ended $state: $(head -c 900 "$T/job.json")" ;;
        esac
        i=$((i + 1))
        [ $i -le 600 ] || mp_fail "job $1 still $state after 60 s"
        sleep 0.1
    done
}

recipe="{\"steps\":[{\"quantize\":{\"bits\":8}}],\"evaluate\":{\"dataset_id\":\"$ds_id\",\"metric\":\"top1\"}}"
st=$(mp_http "$T/post.json" -F "model=@$T/model.onnx" -F "recipe=$recipe" "$MP_URL/jobs")
[ "$st" = 202 ] || mp_fail "POST /jobs with evaluate.dataset_id: HTTP $st: $(head -c 600 "$T/post.json")"
job=$(mp_json "$T/post.json" 'd["id"]')
check "$T/post.json" "d['dataset']['id'] == '$ds_id'" "the job names its dataset"
wait_job "$job"
M="d['metrics']['evaluation']"
check "$T/job.json" "$M['samples'] == $N and $M['before']['accuracy'] == $before" "the job: the original's accuracy"
after=$(mp_json "$T/int8-report.json" "$E['after']['accuracy']")
check "$T/job.json" "$M['after']['accuracy'] == $after and $M['agreement'] == $(mp_json "$T/int8-report.json" "$E['agreement']")" \
    "the job: the same figures as the command"
st=$(mp_http "$T/report.json" "$MP_URL/jobs/$job/report")
[ "$st" = 200 ] || mp_fail "GET /jobs/$job/report: HTTP $st"
check "$T/report.json" "$E['after']['accuracy'] == $after and d['n_compressed'] == 3" "the report carries the evaluation"

# the dataset sent along with the job, the evaluate block without an id
st=$(mp_http "$T/post2.json" -F "model=@$T/model.onnx" -F "dataset=@$T/test.npz" \
    -F 'recipe={"steps":[{"quantize":{"bits":8}}],"evaluate":{"latency_runs":3}}' "$MP_URL/jobs")
[ "$st" = 202 ] || mp_fail "POST /jobs with a dataset file: HTTP $st: $(head -c 600 "$T/post2.json")"
check "$T/post2.json" "d['dataset']['id'] == '$ds_id'" "the same bytes are the same dataset"
wait_job "$(mp_json "$T/post2.json" 'd["id"]')"
check "$T/job.json" "$M['latency_runs'] == 3 and $M['after']['accuracy'] == $after" "the job with the file"

# a model without a graph cannot be evaluated
st=$(mp_http "$T/st.json" -F "model=@$top_srcdir/tests/fixtures/fmnist_mlp.safetensors" \
    -F "recipe=$recipe" "$MP_URL/jobs")
[ "$st" = 400 ] || mp_fail "an evaluate block for a safetensors model: HTTP $st, expected 400"
check "$T/st.json" "'only an ONNX model' in d['error']['message']" "the 400 says why"

mp_stop_daemon || mp_fail "modelpressd exited with status $MP_DAEMON_STATUS on SIGTERM"
exit 0
