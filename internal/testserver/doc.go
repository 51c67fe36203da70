// Package testserver starts the real servers that network storage tests run
// against, and only tests import it: OpenSSH's sshd with its sftp subsystem (SSHD,
// sshd.go) and an S3-compatible server (S3, s3.go).
//
// Each server is either shared, named by CAIRN_TEST_* environment variables (CI
// may start one for all packages), or private to a test: started on a free
// loopback port with state in t.TempDir() and stopped when the test ends. Only a
// private server can be stopped and restarted, for tests of dropped connections.
// A missing server program fails the test: .ci/run installs them all.
package testserver
