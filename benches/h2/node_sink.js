// An HTTP/2 server on Node's built-in http2 module (h2c, prior knowledge):
// answers each request with `LEN SHA256` of its body. For trying the
// HTTP/2 codec against a server of another lineage:
//   node benches/h2/node_sink.js 8093
//   UPLOADTASK_H2_PEER=127.0.0.1:8093 cargo test -p uploadtask-tests --test http2_interop -- --ignored
const http2 = require("http2");
const crypto = require("crypto");
const port = Number(process.argv[2] || 8093);
const server = http2.createServer({ settings: { initialWindowSize: 16384, maxConcurrentStreams: 50 } });
server.on("stream", (stream) => {
  const hash = crypto.createHash("sha256");
  let len = 0;
  stream.on("data", (chunk) => { hash.update(chunk); len += chunk.length; });
  stream.on("end", () => {
    stream.respond({ ":status": 200, "x-seen": "yes" });
    stream.end(`${len} ${hash.digest("hex")}`);
  });
  stream.on("error", () => {});
});
server.listen(port, "127.0.0.1");
