package main

// The lifecycle of the state directory: one running devcluster per directory, stale pid files of
// killed runs detected, and the ports of the last run remembered so that a restart on the same
// data keeps etcd's member URLs stable.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ports are the loopback ports of one run.
type ports struct {
	API      int `json:"api"`
	EtcdPeer int `json:"etcdPeer"`
	EtcdAPI  int `json:"etcdClient"`
}

type state struct {
	dir string
}

func (s state) pidFile() string    { return filepath.Join(s.dir, "pid") }
func (s state) portsFile() string  { return filepath.Join(s.dir, "ports.json") }
func (s state) etcdDir() string    { return filepath.Join(s.dir, "etcd") }
func (s state) kubeconfig() string { return filepath.Join(s.dir, "kubeconfig") }
func (s state) pki() pki           { return pki{dir: filepath.Join(s.dir, "pki")} }

// claim takes the directory for this process. A live devcluster owning it is an error; the pid
// file of a killed run is reported and replaced, its data kept (etcd recovers from its WAL).
func (s state) claim() error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("unable to create state directory %s: %w", s.dir, err)
	}
	if pid, ok := s.readPid(); ok {
		if processAlive(pid) {
			return fmt.Errorf("a devcluster is already running on %s (pid %d); stop it with `make cluster-down`", s.dir, pid)
		}
		fmt.Fprintf(os.Stderr, "devcluster: found a stale pid file (pid %d is gone); reusing the data in %s\n", pid, s.dir)
	}
	return os.WriteFile(s.pidFile(), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
}

// release removes the pid file if it is still ours.
func (s state) release() {
	if pid, ok := s.readPid(); ok && pid == os.Getpid() {
		_ = os.Remove(s.pidFile())
	}
}

func (s state) readPid() (int, bool) {
	raw, err := os.ReadFile(s.pidFile())
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	return pid, err == nil && pid > 0
}

// processAlive reports whether pid runs a devcluster (a recycled pid of another program is not).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return true
	}
	return strings.Contains(string(cmdline), "devcluster")
}

// choosePorts returns the ports for this run: apiPort if given (it must be free), otherwise the
// last run's ports where still free, otherwise fresh ones.
func (s state) choosePorts(apiPort int) (ports, error) {
	var last ports
	if raw, err := os.ReadFile(s.portsFile()); err == nil {
		_ = json.Unmarshal(raw, &last)
	}
	var p ports
	var err error
	if apiPort != 0 {
		if !portFree(apiPort) {
			return p, fmt.Errorf("port %d is already in use on 127.0.0.1; choose another with --port or omit --port for a free one", apiPort)
		}
		p.API = apiPort
	} else if p.API, err = reuseOrFree(last.API); err != nil {
		return p, err
	}
	if p.EtcdPeer, err = reuseOrFree(last.EtcdPeer); err != nil {
		return p, err
	}
	if p.EtcdAPI, err = reuseOrFree(last.EtcdAPI); err != nil {
		return p, err
	}
	if p.EtcdAPI == p.EtcdPeer || p.EtcdAPI == p.API || p.EtcdPeer == p.API {
		return p, errors.New("unable to find three distinct free ports on 127.0.0.1")
	}
	raw, _ := json.Marshal(p)
	return p, os.WriteFile(s.portsFile(), raw, 0o644)
}

func reuseOrFree(port int) (int, error) {
	if port != 0 && portFree(port) {
		return port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("unable to find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
