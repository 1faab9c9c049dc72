package server_test

import (
	"fmt"
	"os"

	"github.com/writ-dev/writ/server"
)

// ParseConfig refuses a misspelled key, naming it.
func ExampleParseConfig() {
	_, err := server.ParseConfig([]byte("publicURL: https://writ.example.org\ntrustdomain: writ.example.org\n"), os.TempDir())
	fmt.Println(err)
	// Output: unknown key: unknown field "trustdomain"; did you mean "trustDomain"? field names are case-sensitive (see the config reference in docs/config.md)
}
