package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-dev/writ/notify"
	"github.com/writ-dev/writ/server"
)

// TestNotifyWebhooks: a gated action and its approval reach a JSON and a
// Slack webhook, in order, from the server's own commit hook.
func TestNotifyWebhooks(t *testing.T) {
	var mu sync.Mutex
	var jsonBodies, slackTexts []string
	recv := func(dst *[]string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			*dst = append(*dst, string(b))
			mu.Unlock()
		}))
	}
	js, sl := recv(&jsonBodies), recv(&slackTexts)
	defer js.Close()
	defer sl.Close()
	a := startApprovals(t, func(cfg *server.Config) {
		cfg.Notify = []notify.Webhook{{URL: js.URL + "/hook?token=x"}, {URL: sl.URL + "/services/T/B/secret", Format: notify.FormatSlack}}
	})
	self, _ := a.run(releaseRun)
	d := a.decide(self, pgCredential("read"))
	if d.Approval == nil {
		t.Fatalf("gated action: %+v", d)
	}
	if _, err := a.approve("bob", d.Approval.ID); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n, m := len(jsonBodies), len(slackTexts)
		mu.Unlock()
		if n >= 2 && m >= 2 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("webhooks got %d and %d requests; want 2 each", n, m)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var types []string
	for _, b := range jsonBodies {
		var p struct {
			Event struct{ Type, Subject string }
			Link  string
		}
		if err := json.Unmarshal([]byte(b), &p); err != nil {
			t.Fatal(err)
		}
		types = append(types, p.Event.Type)
		if p.Event.Subject != d.Approval.ID || !strings.HasSuffix(p.Link, "/v1/approvals/"+d.Approval.ID) {
			t.Errorf("payload %s: want subject and link of %s", b, d.Approval.ID)
		}
	}
	if strings.Join(types, ",") != "approval.requested,approval.granted" {
		t.Errorf("json webhook event types = %v", types)
	}
	t.Logf("slack: %s", strings.Join(slackTexts, "\n"))
	if !strings.Contains(slackTexts[0], "requested") || !strings.Contains(slackTexts[1], "granted by bob") {
		t.Errorf("slack texts = %q", slackTexts)
	}
}
