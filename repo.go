package writ

// RepoAddRequest is the body of POST /v1/repos: a new empty repository
// (Init) or a copy of Upstream, hosted by writ's git gateway.
type RepoAddRequest struct {
	Name     string `json:"name"`
	Init     bool   `json:"init,omitempty"`
	Upstream string `json:"upstream,omitempty"`
	// DefaultBranch is the branch HEAD names in a new repository (default
	// main).
	DefaultBranch string `json:"defaultBranch,omitempty"`
}

// RepoInfo describes a hosted repository.
type RepoInfo struct {
	Name     string `json:"name"`
	Upstream string `json:"upstream,omitempty"` // without user info
	Head     string `json:"head"`               // the branch HEAD names
	URL      string `json:"url,omitempty"`      // <publicURL>/git/<owner>/<repo>.git
}

// MergeRequest is the body of POST /v1/repos/{owner}/{repo}/merge: merge
// run's branch into a protected branch by the SHA a human approved.
type MergeRequest struct {
	Run RunID `json:"run"`
	// Branch is the run's branch (writ/<run>/<name>, or just <name>);
	// empty: the run's only branch in the repository.
	Branch string `json:"branch,omitempty"`
	// Into is the branch to merge into; empty: the base of the repository
	// in the run's trigger.
	Into string `json:"into,omitempty"`
}

// MergeResult is what a merge did.
type MergeResult struct {
	Repo   string `json:"repo"`
	Into   string `json:"into"`
	Branch string `json:"branch"`
	// Base is the commit Into was at; Head the approved commit it is at now.
	Base       string `json:"base"`
	Head       string `json:"head"`
	DiffDigest string `json:"diffDigest"`
	Decision   string `json:"decision"`
	Approval   string `json:"approval"`
	// Upstream is the mirror (without user info), when the repository has
	// one; Mirrored says whether it received Head, MirrorError why not.
	Upstream    string `json:"upstream,omitempty"`
	Mirrored    bool   `json:"mirrored,omitempty"`
	MirrorError string `json:"mirrorError,omitempty"`
}
