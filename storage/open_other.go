//go:build !unix

package storage

// openNoFollow and openNonBlock: none here; openRegular still refuses
// what is no regular file once opened.
const (
	openNoFollow = 0
	openNonBlock = 0
)
