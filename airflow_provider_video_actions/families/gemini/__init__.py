"""The Gemini family: requests and limits (:mod:`.request`), answers (:mod:`.answers`), the family (:mod:`.family`)."""
