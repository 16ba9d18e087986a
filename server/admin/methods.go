package admin

import "strings"

// allowedMethods is the Allow header of an admin path called with a
// method it does not take, as proto/sluice/v1/admin_http.yaml maps them
// (TestAllowedMethodsFollowTheHTTPRules holds the two together): the one
// runtime limit and an API's backend throughput are read, written and
// deleted; everything else is only read.
func allowedMethods(path string) string {
	if strings.HasSuffix(path, "/runtime-limit") || strings.HasSuffix(path, "/backend-throughput") {
		return "GET, PUT, DELETE"
	}
	return "GET"
}
