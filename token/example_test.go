package token_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/token"
)

// A run token is minted for one audience and verified by writ's API with the
// published key, looked up by kid. The same token is refused for any other
// audience.
func ExampleSigner_Mint() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	signer, err := token.NewSigner(key)
	if err != nil {
		log.Fatal(err)
	}

	now := time.Now()
	raw, err := signer.Mint(&token.Claims{
		Issuer:   "https://writ.example.com",
		Subject:  "spiffe://writ.example.com/agent/refactor-bot/run/01jnmr5s0fa7q7rb4k5z1c9x2d",
		Audience: "https://writ.example.com/v1",
		IssuedAt: now,
		Expiry:   now.Add(5 * time.Minute),
		Run:      "01jnmr5s0fa7q7rb4k5z1c9x2d",
		Agent:    "refactor-bot",
		Profile:  "refactor",
		Ticket:   "jira:ENG-1",
	})
	if err != nil {
		log.Fatal(err)
	}

	v := &token.Verifier{
		Keys: func(kid string) (*ecdsa.PublicKey, bool) {
			if kid == signer.KeyID() {
				return &key.PublicKey, true
			}
			return nil, false
		},
		Issuer: "https://writ.example.com",
		Leeway: 30 * time.Second,
	}
	c, err := v.Verify(raw, "https://writ.example.com/v1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.Subject)
	fmt.Println(c.Run, c.Agent, c.Profile, c.Ticket)

	_, err = v.Verify(raw, "https://vault.example.com")
	fmt.Println(writ.ErrorKind(err), writ.ErrorCode(err))
	// Output:
	// spiffe://writ.example.com/agent/refactor-bot/run/01jnmr5s0fa7q7rb4k5z1c9x2d
	// 01jnmr5s0fa7q7rb4k5z1c9x2d refactor-bot refactor jira:ENG-1
	// unauthenticated audience_mismatch
}
