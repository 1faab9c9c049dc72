package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"writ": func() { os.Exit(main1()) },
	})
}

// TestScripts runs the end-to-end CLI scenarios in testdata/script: each
// starts a real `writ serve` process and drives the real CLI against it.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("XDG_CONFIG_HOME", e.WorkDir+"/.config")
			e.Setenv("HOME", e.WorkDir)
			if _, err := exec.LookPath("ssh-keygen"); err == nil {
				e.Setenv("HAVE_SSH_KEYGEN", "1")
			}
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "ssh-keygen" {
				if _, err := exec.LookPath("ssh-keygen"); err != nil {
					if os.Getenv("WRIT_TEST_REQUIRE_ALL") == "1" {
						return false, err // a missing dependency fails under CI
					}
					return false, nil
				}
				return true, nil
			}
			return false, nil
		},
		Cmds: auditCmds(map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitenv FILE waits (up to 60 s) for FILE, written atomically
			// by `writ serve --dev`, and sets each KEY=VALUE line in the
			// script's environment.
			"waitenv": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 1 {
					ts.Fatalf("usage: waitenv FILE")
				}
				path := ts.MkAbs(args[0])
				deadline := time.Now().Add(60 * time.Second)
				var data []byte
				for {
					var err error
					if data, err = os.ReadFile(path); err == nil {
						break
					}
					if time.Now().After(deadline) {
						ts.Fatalf("waitenv: %s did not appear within 60s", path)
					}
					time.Sleep(20 * time.Millisecond)
				}
				sc := bufio.NewScanner(bytes.NewReader(data))
				for sc.Scan() {
					k, v, ok := strings.Cut(sc.Text(), "=")
					if ok {
						ts.Setenv(k, v)
					}
				}
			},
			// jsonfield FILE KEY VAR sets VAR to the top-level string
			// field KEY of the JSON object in FILE.
			"jsonfield": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 3 {
					ts.Fatalf("usage: jsonfield FILE KEY VAR")
				}
				v, err := jsonField(ts.ReadFile(args[0]), args[1])
				ts.Check(err)
				ts.Setenv(args[2], v)
			},
		}),
	})
}

// jsonField returns the string at a dotted path ("approval.id") of a JSON
// object; a missing or non-string value is an error, so a script never
// goes on with an empty variable.
func jsonField(data, key string) (string, error) {
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		return "", err
	}
	for _, k := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return "", fmt.Errorf("jsonfield: %s: not an object at %q", key, k)
		}
		if v, ok = m[k]; !ok {
			return "", fmt.Errorf("jsonfield: no %s", key)
		}
	}
	s, ok := v.(string)
	if !ok || s == "" {
		return "", fmt.Errorf("jsonfield: %s is %v, not a non-empty string", key, v)
	}
	return s, nil
}
