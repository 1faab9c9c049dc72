package strictjson_test

import (
	"fmt"

	"github.com/writ-dev/writ/internal/strictjson"
)

func ExampleDecode() {
	var v struct {
		Agent string `json:"agent"`
	}
	fmt.Println(strictjson.Decode([]byte(`{"agent": "refactor-bot"}`), &v), v.Agent)
	fmt.Println(strictjson.Decode([]byte(`{"agent": "a", "Agent": "b"}`), &v))
	fmt.Println(strictjson.Decode([]byte(`{"Agent": "b"}`), &v))
	// Output:
	// <nil> refactor-bot
	// strictjson: case_variant_key at $.Agent: keys "agent" and "Agent" differ only in letter case; send one key, spelled exactly
	// strictjson: unknown_field at $.Agent: unknown field "Agent"; did you mean "agent"? field names are case-sensitive
}
