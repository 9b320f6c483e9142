"""Knowledge base: Markdown articles per industry and language, validated, linted, indexed and searched."""
