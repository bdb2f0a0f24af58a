package main

// builtInTypes are the backend types this test build registers: "file"
// always, the others added by the backend_*_test.go files their build tags
// keep.
var builtInTypes = []string{"file"}
