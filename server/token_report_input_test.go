package server_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sluicev1 "github.com/sluice-rl/sluice/proto/sluice/v1"
)

// wantInvalid fails unless err is InvalidArgument whose message starts with
// field.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), field+":") {
		t.Errorf("%s: %v, want InvalidArgument naming %s", what, err, field)
	}
}

func TestReportUsageWithoutUsageIsInvalidAndChangesNothing(t *testing.T) {
	tc := startTokenSluice(t)
	ctx := context.Background()
	id := tc.reserve("nousage", "production", 100, 200).ReservationId
	reserved := map[sluicev1.LimitKind]tokens{total: {300, 300, 700}, prompt: {100, 100, 500}, completion: {200, 200, 300}}

	_, err := tc.c.ReportUsage(ctx, &sluicev1.ReportUsageRequest{ReservationId: id})
	wantInvalid(t, "report by reservation without usage", err, "usage")
	tc.wantUsage("nousage", "production", reserved)

	_, err = tc.c.ReportUsage(ctx, &sluicev1.ReportUsageRequest{ReservationId: id, Domain: "ai", Descriptors: aiDescriptors("nousage", "production")})
	wantInvalid(t, "report by reservation and descriptors without usage", err, "usage")
	_, err = tc.c.ReportUsage(ctx, &sluicev1.ReportUsageRequest{Domain: "ai", Descriptors: aiDescriptors("nousage", "production")})
	wantInvalid(t, "report by descriptors without usage", err, "usage")
	tc.wantUsage("nousage", "production", reserved)

	// The report that follows is the one that counts.
	tc.report(id, 90, 30)
	tc.wantUsage("nousage", "production", map[sluicev1.LimitKind]tokens{total: {120, 0, 880}, prompt: {90, 0, 510}, completion: {30, 0, 470}})
}

func TestReportUsageTotalBelowItsPartsIsInvalid(t *testing.T) {
	tc := startTokenSluice(t)
	ctx := context.Background()
	id := tc.reserve("inconsistent", "production", 100, 200).ReservationId
	reserved := map[sluicev1.LimitKind]tokens{total: {300, 300, 700}, prompt: {100, 100, 500}, completion: {200, 200, 300}}
	bad := &sluicev1.Usage{PromptTokens: 90, CompletionTokens: 30, TotalTokens: 119}

	_, err := tc.c.ReportUsage(ctx, &sluicev1.ReportUsageRequest{ReservationId: id, Usage: bad})
	wantInvalid(t, "total 119 of 90 + 30", err, "usage.total_tokens")
	_, err = tc.c.ReportUsage(ctx, &sluicev1.ReportUsageRequest{Domain: "ai", Descriptors: aiDescriptors("inconsistent", "production"), Usage: bad})
	wantInvalid(t, "by descriptors, total 119 of 90 + 30", err, "usage.total_tokens")
	tc.wantUsage("inconsistent", "production", reserved)

	// A total above its parts is the backend's word (e.g. tokens it bills
	// that are neither prompt nor completion) and is charged as given.
	if _, err := tc.c.ReportUsage(ctx, &sluicev1.ReportUsageRequest{ReservationId: id, Usage: &sluicev1.Usage{PromptTokens: 90, CompletionTokens: 30, TotalTokens: 150}}); err != nil {
		t.Fatalf("total above its parts: %v", err)
	}
	tc.wantUsage("inconsistent", "production", map[sluicev1.LimitKind]tokens{total: {150, 0, 850}, prompt: {90, 0, 510}, completion: {30, 0, 470}})
}
