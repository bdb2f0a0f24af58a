//go:build !novault

package main

func init() { builtInTypes = append(builtInTypes, "vault") }
