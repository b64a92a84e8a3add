// ort_run.js — run an ONNX model in onnxruntime-node (the runtime no one here wrote).
//
//   node ort_run.js MODEL MANIFEST.json OUT.bin
//
// MANIFEST: {"data": "inputs.bin", "runs": [{"feeds": {NAME: {"type": "float32"|"int64",
// "dims": [...], "offset": BYTES}}}], "carry": {OUTPUT: INPUT}} — each run's feeds are read from
// the data file at their byte offsets; "carry" feeds an output of one run to an input of the
// next (a recurrent state). Every output of every run is appended to OUT.bin as float32 in the
// session's output order, and one JSON line on stdout names them with their dims. Exit 1 (with
// the runtime's message) when the model does not load or a run fails. The session (one thread,
// all optimizations) and the feeds are made by functions that bench/ort_time.js uses too.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

const TYPES = {
    float32: [Float32Array, 4],
    int64: [BigInt64Array, 8],
};

// One session as every comparison here makes it: all graph optimizations, one thread.
function createSession(model) {
    return ort.InferenceSession.create(model, {
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        logSeverityLevel: 3,
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
    });
}

// The ort.Tensor feeds of one manifest run, read from the data file at their byte offsets.
function readFeeds(run, data) {
    const feeds = {};
    for (const [name, f] of Object.entries(run.feeds)) {
        const [Ctor, size] = TYPES[f.type];
        const n = f.dims.reduce((a, b) => a * b, 1);
        const bytes = data.subarray(f.offset, f.offset + n * size);
        const arr = new Ctor(n);
        Buffer.from(arr.buffer).set(bytes);
        feeds[name] = new ort.Tensor(f.type, arr, f.dims);
    }
    return feeds;
}

// (manifest, its data file's bytes)
function readManifest(manifestPath) {
    const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
    return [manifest, fs.readFileSync(path.resolve(path.dirname(manifestPath), manifest.data))];
}

async function main() {
    const [model, manifestPath, outPath] = process.argv.slice(2);
    const [manifest, data] = readManifest(manifestPath);
    const session = await createSession(model);
    const out = fs.openSync(outPath, 'w');
    const shapes = {};
    let carried = {};
    for (const run of manifest.runs) {
        const feeds = readFeeds(run, data);
        Object.assign(feeds, carried);
        const result = await session.run(feeds);
        carried = {};
        for (const [o, i] of Object.entries(manifest.carry || {})) {
            carried[i] = result[o];
        }
        for (const name of session.outputNames) {
            const t = result[name];
            shapes[name] = t.dims;
            const f32 = Float32Array.from(t.data, Number);
            fs.writeSync(out, Buffer.from(f32.buffer));
        }
    }
    fs.closeSync(out);
    console.log(JSON.stringify({outputs: session.outputNames, dims: shapes}));
}

module.exports = {createSession, readFeeds, readManifest};

if (require.main === module) {
    main().catch((e) => {
        console.error(`ort_run: ${process.argv[2]}: ${e.message}`);
        process.exit(1);
    });
}
