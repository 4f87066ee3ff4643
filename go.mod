module github.com/agentbackend/agentbackend

go 1.26
