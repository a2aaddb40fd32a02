module ciclo.dev/e2e/flux/gitserver

go 1.26.0
