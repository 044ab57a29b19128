"""Reading images.yaml: bounded YAML with positions, variables, schema messages, each section checked."""
