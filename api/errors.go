package api

// ErrorBody is the JSON error envelope of docs/design.md §4.8: every
// route answers an error with it (the git and MCP gateways with their
// protocols' own answers where those protocols define one).
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of [ErrorBody]: the fields of a writ.Error a
// caller may see.
type ErrorDetail struct {
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Items    []string `json:"items,omitempty"`
	Decision string   `json:"decision,omitempty"`
	Approval string   `json:"approval,omitempty"`
}
