// ort_time.js — the peer's side of bench/runtime.py: the median latency of a model in
// onnxruntime-node, one thread, as tests/conformance/runtime_tool's `time` measures ours.
//
//   node ort_time.js MODEL MANIFEST.json N
//
// MANIFEST is tests/integration/onnx's format; only the first run's feeds are used. The session
// is ort_run.js's (graphOptimizationLevel all, intraOpNumThreads 1, interOpNumThreads 1,
// sequential execution). One warm-up run, then N timed runs of `await session.run(feeds)`, each
// from just before the call to just after its promise resolves: what a caller of
// onnxruntime-node waits. Prints one JSON line: {"median_ms", "min_ms", "max_ms", "runs",
// "version"}. Exit 1 with the runtime's message when the model does not load or a run fails.
'use strict';
const path = require('path');
const {createSession, readFeeds, readManifest} =
    require(path.join(__dirname, '..', 'tests', 'integration', 'onnx', 'ort_run.js'));

async function main() {
    const [model, manifestPath, nArg] = process.argv.slice(2);
    const n = Math.max(1, parseInt(nArg, 10) || 1);
    const [manifest, data] = readManifest(manifestPath);
    const session = await createSession(model);
    const feeds = readFeeds(manifest.runs[0], data);
    await session.run(feeds); // warm up
    const t = [];
    for (let i = 0; i < n; i++) {
        const t0 = process.hrtime.bigint();
        await session.run(feeds);
        t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    t.sort((a, b) => a - b);
    console.log(JSON.stringify({median_ms: t[Math.floor(n / 2)], min_ms: t[0], max_ms: t[n - 1],
                                runs: n, version: require('onnxruntime-node/package.json').version}));
}

main().catch((e) => {
    console.error(`ort_time: ${process.argv[2]}: ${e.message}`);
    process.exit(1);
});
