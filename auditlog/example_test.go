package auditlog_test

import (
	"context"
	"fmt"
	"log"

	"golang.org/x/mod/sumdb/note"

	"github.com/writ-dev/writ/auditlog"
)

// The server side integrates committed events and signs a checkpoint; a
// verifier that holds only the log's public key opens the checkpoint,
// verifies every entry against it, and checks one entry's inclusion proof.
func Example() {
	ctx := context.Background()

	// Server: the store (sqlstore in writ serve; an in-memory fake here)
	// holds three committed events.
	store := newMemStore()
	store.add(
		[]byte(`{"id":"ev_1","type":"run.started"}`),
		[]byte(`{"id":"ev_2","type":"decision"}`),
		[]byte(`{"id":"ev_3","type":"run.ended"}`),
	)
	signer, err := note.NewSigner(testSkey) // the log key, from writ init
	if err != nil {
		log.Fatal(err)
	}
	l, err := auditlog.New(auditlog.Config{Store: store, Signer: signer, Origin: "example.com/audit"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := l.Integrate(ctx); err != nil {
		log.Fatal(err)
	}
	msg, err := l.Checkpoint(ctx) // GET /v1/audit/checkpoint
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", msg)

	// Verifier: the public key and origin come from configuration, never
	// from the server.
	verifier, err := note.NewVerifier("example.com/audit+e0e09697+AQCEepZMA9FLYojszRZQ1+YaE1yAizVBT4fuj4XprYm0")
	if err != nil {
		log.Fatal(err)
	}
	cp, err := auditlog.OpenCheckpoint(msg, verifier, "example.com/audit")
	if err != nil {
		log.Fatal(err)
	}
	entries := store.entries() // GET /v1/audit/entries, or an export
	v, err := auditlog.Verify(cp, entries, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("verified %d entries up to root %s\n", v.Entries, v.Checkpoint.Root)

	proof, err := l.InclusionProof(ctx, 1, cp.Size)
	if err != nil {
		log.Fatal(err)
	}
	err = auditlog.CheckInclusion(proof, cp, 1, auditlog.LeafHash(entries[1].Body))
	fmt.Println("entry 1 included:", err == nil)

	// Someone edits an event in the database.
	entries[1].Body = []byte(`{"id":"ev_2","type":"decision","allow":true}`)
	_, err = auditlog.Verify(cp, entries, nil)
	fmt.Println(err)

	// Output:
	// example.com/audit
	// 3
	// drJ6zFmWwxXpebl5aNZHLPAceJdQAZhY99dRj+HCEAc=
	//
	// — example.com/audit 4OCWl9KeQ6StkS23tfl5Oe6YhY49ruff1TTx8X8F6oFtDZ3t3caOg4PddwaO3npmbI6hXQ7zTlTbcFS7hLcQuLVbVAg=
	//
	// verified 3 entries up to root drJ6zFmWwxXpebl5aNZHLPAceJdQAZhY99dRj+HCEAc=
	// entry 1 included: true
	// audit log: entry 1: altered: its bytes do not hash to the leaf hash recorded when it was logged
}

func Example_leafHash() {
	h := auditlog.LeafHash([]byte{}) // SHA-256(0x00), the RFC 6962 leaf of an empty entry
	fmt.Printf("%x\n", h[:])
	// Output: 6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d
}
