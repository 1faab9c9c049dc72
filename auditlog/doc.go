// Package auditlog turns writ's outbox of committed audit events into a
// tamper-evident transparency log: an RFC 6962 Merkle tree over the exact
// stored event bytes, checkpoints signed in the C2SP tlog-checkpoint format,
// inclusion and consistency proofs, and offline verification of a whole log.
//
// It is part of the writ server, with no API stability, except for the
// verification side — [Verify], [CheckTrusted], [CheckInclusion],
// [CheckConsistency], [OpenCheckpoint], [Checkpoint], [Entry], [LeafHash]
// and [VerifyError] — which `writ audit verify` uses online and offline and
// which is meant to become public API.
//
// All tree arithmetic is done by [golang.org/x/mod/sumdb/tlog] and all
// signing by [golang.org/x/mod/sumdb/note]; this package holds no Merkle
// code of its own.
//
// # The log
//
// The store writes every event into an outbox in the same transaction as
// the state change it records (docs/design.md §4.6). A single integrator, [Log],
// takes the committed events in commit order and gives each the next log
// index ("seq"). The leaf of entry i is
//
//	SHA-256(0x00 || body)       // tlog.RecordHash, see [LeafHash]
//
// where body is the exact byte string the store holds: nothing is
// re-encoded, so a verifier needs only the bytes. Interior nodes are
// SHA-256(0x01 || left || right), as in RFC 6962 §2.1. The integrator
// stores the tree's "stored hashes" ([tlog.StoredHashIndex]) so that an
// inclusion or consistency proof costs O(log n) hash reads, and signs a
// checkpoint for every size it reaches; sequence numbers, hashes and
// checkpoint are committed in one transaction ([Store.AppendLog]).
//
// # Checkpoints
//
// A checkpoint is a signed note (https://c2sp.org/signed-note) whose text
// is exactly three lines (https://c2sp.org/tlog-checkpoint):
//
//	<origin>
//	<tree size, decimal, no leading zeros>
//	<root hash, standard base64>
//
// writ's origin is "<trust-domain>/audit" and its signature is the Ed25519
// log key of docs/design.md §4.7. C2SP allows opaque extension lines after the
// root; writ writes none and [OpenCheckpoint] refuses them, so a checkpoint
// carries nothing a verifier does not check. Signatures by other keys
// (witness cosignatures) are ignored, as the signed-note format requires.
//
// # Security properties
//
// What a verifier trusts, given out of band: the log's public key (a
// [note.Verifier]), the origin, and — optionally — a checkpoint it
// verified before (a trust file). Nothing served by the log is trusted
// until checked against those.
//
// What is verified:
//   - A checkpoint's signature by the log key, its origin and its exact
//     format ([OpenCheckpoint]).
//   - That the entries are exactly 0, 1, …, size-1, each once and in order;
//     that every leaf hash recomputed from the bytes builds the signed root;
//     that they reproduce the older signed checkpoints too ([Verify]). Leaf
//     hashes the server recorded are used only to name the entry that
//     changed, never to accept one.
//   - That a checkpoint the client trusted before is a prefix of the new
//     tree ([CheckTrusted], [CheckConsistency]): a truncated, rolled back,
//     forked or rewritten log fails, even when it comes with a valid older
//     checkpoint.
//   - That a single entry is in a signed tree, from an O(log n) proof
//     ([CheckInclusion]).
//
// What fails closed: every check returns an error — a [*VerifyError] naming
// the first bad index when there is one — and there is no option to skip a
// check. The integrator too: before extending the tree it recomputes the
// root of the stored tree and refuses to sign anything if it does not
// reproduce the latest signed checkpoint, or if the store holds less than
// this process has already signed (a database restored from a backup);
// signing on top of either would publish a fork.
// And the proof server: every proof and tile is checked against the signed
// tree before it is served, computed from the leaves when the stored
// hashes fail that check, and refused when it still fails; the stored
// tree is re-derived from the leaves in the background ([Log.CheckTree])
// and repaired only where the signed checkpoints prove the right values
// ([Log.RepairTree]).
//
// What is not covered: the log key is the root of trust, and a holder of it
// can sign anything; a log that shows different clients different,
// individually valid histories (a split view) is caught only when one
// client sees both, through its trust file or the older checkpoints it is
// given — witnesses are not part of this package. That every state change
// has its event is the store's invariant (one transaction), which no log
// verifier can check from outside.
//
// # Concurrency
//
// [Log.Integrate] serializes itself; in the server, [Log.Run] is its only
// caller and runs in one goroutine until its context is done. Every other
// method of [Log] is safe for concurrent use. The verification functions
// are pure.
package auditlog
