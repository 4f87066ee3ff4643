// Command kubernetes puts a workspace in a pod of whatever cluster the
// kubeconfig names ($KUBECONFIG, ~/.kube/config or in-cluster), works in it
// as an agent would (files, commands, a scope, a search, a background
// process), shows the pod's lockdown, and deletes the pod.
//
//	go run ./examples/kubernetes [-namespace default] [-image busybox:1.37] [-pull IfNotPresent]
//
// The image needs /bin/sh and the POSIX tools of busybox or coreutils. The
// cluster needs the RBAC of the README's "On Kubernetes" section.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/kubernetes"
)

func main() {
	namespace := flag.String("namespace", "", "namespace (default: the kubeconfig's, else default)")
	image := flag.String("image", "busybox:1.37", "image with /bin/sh and POSIX tools")
	pull := flag.String("pull", "IfNotPresent", "image pull policy: Always, IfNotPresent or Never")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	start := time.Now()
	pod, err := kubernetes.New(ctx, kubernetes.Config{
		Namespace: *namespace,
		Template: kubernetes.PodTemplate{
			Image:           *image,
			ImagePullPolicy: corev1.PullPolicy(*pull),
			Labels:          map[string]string{"app.kubernetes.io/name": "agentbackend-example"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer pod.Close() // deletes the pod
	fmt.Printf("pod %s/%s running, workspace %s, ready in %v\n\n", pod.Namespace(), pod.Pod(), pod.RootDir(), time.Since(start).Round(time.Millisecond))

	// Files and commands, as on any backend.
	must(pod.Write(ctx, "src/hello.sh", []byte("#!/bin/sh\necho \"hello from $(hostname)\"\n")))
	res, err := pod.Exec(ctx, "sh src/hello.sh && ls -l src", nil)
	must(err)
	fmt.Printf("exec:\n%s\n", res.Stdout)

	// The lockdown: nobody, no capabilities, no service account token.
	res, err = pod.Exec(ctx, "id; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ls /var/run/secrets 2>&1 || true", nil)
	must(err)
	fmt.Printf("lockdown:\n%s\n", res.Stdout)

	// A tenant's scope: its own directory, nothing outside it.
	alice, err := pod.Scope("users/alice", &ab.ScopeConfig{Env: map[string]string{"TENANT": "alice"}})
	must(err)
	defer alice.Close()
	must(alice.Write(ctx, "notes.md", []byte("TODO: ship it\n")))
	res, err = alice.Exec(ctx, `echo "$TENANT in $PWD"`, nil)
	must(err)
	fmt.Printf("scope: %s", res.Stdout)
	if _, err := alice.Read(ctx, "../../src/hello.sh"); err != nil {
		fmt.Printf("scope escape refused: %s\n\n", ab.ErrorCode(err))
	}

	// A search runs next to the data; a background process is a pod exec.
	found, err := ab.Grep(ctx, pod, ab.GrepOptions{Pattern: "TODO", Mode: ab.GrepContent})
	must(err)
	fmt.Printf("grep TODO:\n%s\n", strings.TrimSpace(found.String()))
	p, err := pod.Start(ctx, "for i in 1 2 3; do echo tick $i; sleep 0.2; done", nil)
	must(err)
	out, err := p.Wait(ctx)
	must(err)
	fmt.Printf("\nbackground %s: %s", p.ID(), strings.ReplaceAll(string(out.Stdout), "\n", " "))
	fmt.Println("\n\ndeleting the pod")
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
