package githubapp

import (
	"maps"
	"slices"
	"strings"

	"github.com/writ-dev/writ"
)

// level is a GitHub permission level.
type level int

const (
	none level = iota
	read
	write
)

// levels maps GitHub's level names to levels. Only read and write are
// accepted; "admin" (some organization permissions) is not.
var levels = map[string]level{"read": read, "write": write}

// known are the permission names GitHub defines for App installation
// tokens (the app-permissions schema of GitHub's REST API, 2022-11-28):
// repository, organization and account permissions. A name outside it is
// a configuration mistake (KindInvalid), not a policy question.
var known = map[string]bool{
	// Repository permissions.
	"actions": true, "administration": true, "attestations": true, "checks": true,
	"codespaces": true, "contents": true, "custom_properties_for_repositories": true,
	"dependabot_secrets": true, "deployments": true, "discussions": true, "environments": true,
	"issues": true, "merge_queues": true, "metadata": true, "packages": true, "pages": true,
	"pull_requests": true, "repository_custom_properties": true, "repository_hooks": true,
	"repository_projects": true, "secret_scanning_alerts": true, "secrets": true,
	"security_events": true, "single_file": true, "statuses": true,
	"vulnerability_alerts": true, "workflows": true,
	// Organization permissions.
	"members": true, "organization_administration": true, "organization_announcement_banners": true,
	"organization_copilot_seat_management": true, "organization_custom_org_roles": true,
	"organization_custom_properties": true, "organization_custom_roles": true,
	"organization_events": true, "organization_hooks": true, "organization_packages": true,
	"organization_personal_access_token_requests": true, "organization_personal_access_tokens": true,
	"organization_plan": true, "organization_projects": true, "organization_secrets": true,
	"organization_self_hosted_runners": true, "organization_user_blocking": true,
	"team_discussions": true,
	// Account permissions.
	"email_addresses": true, "followers": true, "git_ssh_keys": true, "gpg_keys": true,
	"interaction_limits": true, "profile": true, "starring": true,
}

// allowed is the most each permission may be granted by this source:
// reading the repository's code, metadata, checks, statuses, Actions runs
// and discussions, and reading and writing issues and pull requests. Every
// other known permission — contents:write, workflows, administration,
// secrets, environments, hooks, any organization permission — is refused
// with KindDenied: writes to code go through writ's git gateway, never
// straight to GitHub. (Merging a pull request through the API needs
// contents:write, so pull_requests:write cannot merge.)
var allowed = map[string]level{
	"metadata":      read,
	"contents":      read,
	"checks":        read,
	"statuses":      read,
	"actions":       read,
	"discussions":   read,
	"issues":        write,
	"pull_requests": write,
}

// defaultPermissions are asked for when a request names none.
var defaultPermissions = []string{"contents:read", "metadata:read"}

// ParsePermissions checks permissions ("contents:read", "issues:write"…)
// and returns them as the token request's permissions object. No
// permissions means contents:read and metadata:read. A name asked twice gets the
// higher level. Unknown names and levels are KindInvalid
// (github_permission_unknown); known permissions beyond the allowed table
// are KindDenied (github_permission_not_allowed), every one listed in Items.
func ParsePermissions(permissions []string) (map[string]string, error) {
	if len(permissions) == 0 {
		permissions = defaultPermissions
	}
	want := make(map[string]level, len(permissions))
	var unknown, denied []string
	for _, p := range permissions {
		name, lv, ok := strings.Cut(strings.TrimSpace(p), ":")
		l, lok := levels[lv]
		if !ok || !known[name] || !lok {
			unknown = append(unknown, p)
			continue
		}
		if l > allowed[name] {
			denied = append(denied, p)
			continue
		}
		want[name] = max(want[name], l)
	}
	if len(unknown) > 0 {
		e := writ.Errorf(writ.KindInvalid, "github_permission_unknown",
			"githubapp: %s: a permission is a GitHub App permission name and read or write, such as contents:read or issues:write", strings.Join(unknown, ", "))
		e.Items = unknown
		return nil, e
	}
	if len(denied) > 0 {
		e := writ.Errorf(writ.KindDenied, "github_permission_not_allowed",
			"githubapp: %s: GitHub tokens from writ may only read, and write issues and pull requests; code changes go through writ's git gateway", strings.Join(denied, ", "))
		e.Items = denied
		return nil, e
	}
	out := make(map[string]string, len(want))
	for name, l := range want {
		out[name] = l.String()
	}
	return out, nil
}

// FormatPermissions renders a permissions object as sorted name:level
// pairs joined by commas ("contents:read,issues:write").
func FormatPermissions(perms map[string]string) string {
	var b strings.Builder
	for i, name := range slices.Sorted(maps.Keys(perms)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(name + ":" + perms[name])
	}
	return b.String()
}

func (l level) String() string {
	switch l {
	case read:
		return "read"
	case write:
		return "write"
	}
	return "none"
}
