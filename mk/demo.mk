# demo.mk - `make demo`: a narrated tour of the CLI and examples/hello against a private
# redis-server (temp dir, free port, always stopped). See scripts/demo.sh.

demo: $(BUILD)/redkv $(BUILD)/examples/hello
	sh scripts/demo.sh $(BUILD)

.PHONY: demo
