// verify.js: checks, in the browser, that a log entry is included in the
// audit log's signed checkpoint (RFC 6962 / RFC 9162 inclusion proof;
// C2SP signed-note checkpoint, Ed25519). It trusts nothing the server
// computed: it hashes the entry's bytes itself, walks the proof to a root,
// compares that root with the checkpoint's, and verifies the checkpoint's
// signature with the log key shown on the page.
"use strict";
(function () {
  const button = document.getElementById("verify");
  if (!button) return;
  const out = document.getElementById("verify-result");
  const detail = document.getElementById("verify-detail");
  const te = new TextEncoder();

  function b64(s) {
    const bin = atob(s);
    const b = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
    return b;
  }
  function hex(b) {
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  function cat(...parts) {
    const n = parts.reduce((a, p) => a + p.length, 0);
    const b = new Uint8Array(n);
    let o = 0;
    for (const p of parts) { b.set(p, o); o += p.length; }
    return b;
  }
  async function sha256(b) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", b));
  }
  function equal(a, b) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  // rootFromProof is RFC 9162 §2.1.3.2.
  async function rootFromProof(index, size, leaf, proof) {
    if (index >= size) throw new Error("index " + index + " is beyond the tree size " + size);
    let fn = index, sn = size - 1, r = leaf;
    for (const p of proof) {
      if (sn === 0) throw new Error("the proof is longer than the tree allows");
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(cat(Uint8Array.of(1), p, r));
        if (fn % 2 === 0) {
          while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
        }
      } else {
        r = await sha256(cat(Uint8Array.of(1), r, p));
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
    }
    if (sn !== 0) throw new Error("the proof is shorter than the tree needs");
    return r;
  }

  // verifyNote checks the checkpoint's signature by the log key, given as
  // a note verifier key "name+hash+base64(0x01 ‖ Ed25519 public key)".
  async function verifyNote(note, vkey) {
    // The key data is base64, which may itself hold "+": split twice only.
    const i = vkey.indexOf("+"), j = i < 0 ? -1 : vkey.indexOf("+", i + 1);
    if (i <= 0 || j < 0) throw new Error("the log key is not a note verifier key");
    const name = vkey.slice(0, i), keyBytes = b64(vkey.slice(j + 1));
    if (keyBytes[0] !== 1 || keyBytes.length !== 33) throw new Error("the log key is not an Ed25519 key");
    const keyHash = (await sha256(cat(te.encode(name + "\n"), keyBytes))).slice(0, 4);
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint has no signature");
    const text = note.slice(0, split + 1);
    for (const line of note.slice(split + 2).split("\n")) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const sig = b64(m[2]);
      if (!equal(sig.slice(0, 4), keyHash)) continue;
      let key;
      try {
        key = await crypto.subtle.importKey("raw", keyBytes.slice(1), { name: "Ed25519" }, false, ["verify"]);
      } catch (e) {
        return "unsupported";
      }
      return (await crypto.subtle.verify({ name: "Ed25519" }, key, sig.slice(4), te.encode(text))) ? "ok" : "bad";
    }
    throw new Error("the checkpoint carries no signature by the log key " + name);
  }

  function show(ok, msg, lines) {
    out.textContent = msg;
    out.className = "result " + (ok ? "ok" : "fail");
    out.dataset.state = ok ? "verified" : "failed";
    detail.textContent = lines.join("\n");
  }

  button.addEventListener("click", async () => {
    const index = Number(button.dataset.index);
    out.textContent = "checking…";
    out.dataset.state = "running";
    const lines = [];
    try {
      const resp = await fetch("/ui/audit/proof?index=" + index, { credentials: "same-origin", headers: { "Accept": "application/json" } });
      if (!resp.ok) throw new Error("the server answered " + resp.status);
      const p = await resp.json();
      if (!p.checkpoint) throw new Error("the proof did not come with a signed checkpoint");
      const body = b64(p.entry.body);
      const leaf = await sha256(cat(Uint8Array.of(0), body));
      lines.push("leaf hash (computed here): " + hex(leaf));
      if (p.entry.leafHash && hex(leaf) !== p.entry.leafHash) throw new Error("the entry's bytes do not hash to its recorded leaf hash");
      const root = await rootFromProof(p.index, p.size, leaf, p.proof.map(b64));
      const cl = p.checkpoint.split("\n");
      const cpSize = Number(cl[1]), cpRoot = b64(cl[2]);
      lines.push("root from the proof:        " + hex(root));
      lines.push("root in the checkpoint:     " + hex(cpRoot) + " (size " + cpSize + ")");
      if (cpSize !== p.size) throw new Error("the proof is for size " + p.size + ", the checkpoint for " + cpSize);
      if (!equal(root, cpRoot)) throw new Error("the proof does not lead to the checkpoint's root");
      const sig = await verifyNote(p.checkpoint, button.dataset.key);
      if (sig === "bad") throw new Error("the checkpoint's signature does not verify with the log key");
      if (sig === "unsupported") {
        lines.push("this browser cannot verify Ed25519: the checkpoint's signature was NOT checked here");
        show(true, "Included (tree checked; signature not checked by this browser) in the log of size " + cpSize, lines);
        return;
      }
      lines.push("checkpoint signature: verified with the log key");
      show(true, "Verified: entry #" + index + " is in the signed log of size " + cpSize, lines);
    } catch (e) {
      show(false, "Not verified: " + e.message, lines);
    }
  });
})();
