package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/writ-dev/writ"
)

// AddRepo hosts a repository in writ's git gateway (admins).
func (c *Client) AddRepo(ctx context.Context, req *writ.RepoAddRequest) (*writ.RepoInfo, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out writ.RepoInfo
	err = c.do(ctx, http.MethodPost, "/v1/repos", bytes.NewReader(b), &out)
	return &out, err
}

// Merge merges a run's branch of repo by the approved SHA. Until a human
// approved exactly this change it fails with a KindApprovalPending error
// naming the approval.
func (c *Client) Merge(ctx context.Context, repo string, req *writ.MergeRequest) (*writ.MergeResult, error) {
	if !writ.ValidRepoName(repo) {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_repo", "repository %q: want owner/repo", repo)
	}
	owner, name, _ := strings.Cut(repo, "/")
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out writ.MergeResult
	err = c.do(ctx, http.MethodPost, "/v1/repos/"+owner+"/"+name+"/merge", bytes.NewReader(b), &out)
	return &out, err
}
