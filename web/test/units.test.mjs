// Unit tests of the page's pure parts, on Node's own test runner (`npm test`).
import assert from "node:assert/strict";
import { test } from "node:test";
import { tokenFromLink } from "../src/links.js";
import { placeholders, serverSentEvents } from "../src/session/run.js";

test("a share link, a path or a bare token gives the token", () => {
  assert.equal(tokenFromLink("https://studio.example/s/AbC-12_x"), "AbC-12_x");
  assert.equal(tokenFromLink("  /s/AbC?x=1#y "), "AbC");
  assert.equal(tokenFromLink("AbC-12_x"), "AbC-12_x");
  assert.equal(tokenFromLink("/s/%41b"), "Ab");
});

test("anything else is not a share link", () => {
  for (const text of ["", "   ", "https://studio.example/", "two words", "<script>", "a/b"]) {
    assert.equal(tokenFromLink(text), null, text);
  }
});

test("placeholders follow the server's grammar, once each, in order", () => {
  assert.deepEqual(placeholders("Hi {{name}}, {{ name }} from {{\tteam_2 }}"), ["name", "team_2"]);
  assert.deepEqual(placeholders("{{ 2x }} {{a-b}} {{}} {{ x y }} {x} {{ok"), []);
  assert.deepEqual(placeholders("{{{inner}}}"), ["inner"]);
  assert.deepEqual(placeholders("{{ \u0645 }}"), []);
});

function streamOf(chunks) {
  const encoder = new TextEncoder();
  let index = 0;
  return {
    body: {
      getReader: () => ({
        read: async () =>
          index < chunks.length ? { value: encoder.encode(chunks[index++]), done: false } : { value: undefined, done: true },
      }),
    },
  };
}

test("server-sent events are parsed however the bytes are split", async () => {
  const whole = 'event: delta\ndata: {"text":"مر"}\n\nevent: delta\r\ndata: {"text":"حبا"}\r\n\r\n: comment\n\nevent: done\ndata: {"run_id":7}\n\n';
  for (const size of [1, 3, 7, whole.length]) {
    const chunks = [];
    for (let i = 0; i < whole.length; i += size) chunks.push(whole.slice(i, i + size));
    const events = [];
    for await (const event of serverSentEvents(streamOf(chunks))) events.push(event);
    assert.deepEqual(events, [
      ["delta", { text: "مر" }],
      ["delta", { text: "حبا" }],
      ["done", { run_id: 7 }],
    ], `chunks of ${size}`);
  }
});

test("a multi-byte character split across chunks stays whole", async () => {
  const bytes = new TextEncoder().encode('event: delta\ndata: {"text":"😀"}\n\n');
  const cut = bytes.indexOf(0xf0) + 2; // inside the emoji's four UTF-8 bytes
  const pieces = [bytes.slice(0, cut), bytes.slice(cut)];
  const response = {
    body: {
      getReader: () => ({
        read: async () => (pieces.length ? { value: pieces.shift(), done: false } : { value: undefined, done: true }),
      }),
    },
  };
  const events = [];
  for await (const event of serverSentEvents(response)) events.push(event);
  assert.deepEqual(events, [["delta", { text: "😀" }]]);
});
