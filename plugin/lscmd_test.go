package main

import (
	"bufio"
	"bytes"
	"fmt"
	"testing"
	"text/tabwriter"
	"time"
)

// The one-pass table must print exactly what text/tabwriter printed.
func TestLsTableMatchesTabwriter(t *testing.T) {
	when := time.Date(2026, 12, 4, 20, 5, 19, 0, time.UTC)
	for _, rows := range [][]lsEntry{
		nil,
		{{Name: "a", Versions: 1, Latest: 1, Updated: when, Size: 3}},
		{{Name: "app/db_password", Versions: 10, Latest: 123456, Updated: when, Size: 1048576},
			{Name: "x", Versions: 2, Latest: 7, Updated: when.Add(time.Hour), Size: 0},
			{Name: "a-very-long-name-that-is-longer-than-any-header", Versions: 100, Latest: 1, Updated: when, Size: 42}},
	} {
		var want bytes.Buffer
		tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSIONS\tLATEST\tUPDATED\tSIZE")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\n", r.Name, r.Versions, r.Latest, r.Updated.Format(time.RFC3339), r.Size)
		}
		tw.Flush()
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		if err := writeLsTable(bw, rows); err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		if got.String() != want.String() {
			t.Fatalf("table differs from tabwriter's:\n got:\n%s\nwant:\n%s", got.String(), want.String())
		}
	}
}
