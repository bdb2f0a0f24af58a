//go:build !noetcd

package main

func init() { builtInTypes = append(builtInTypes, "etcd") }
