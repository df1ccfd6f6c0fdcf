"""The reading kit every probe format shares: options and problems (``problems``), CSV/JSONL rows
(``rows``), YAML nodes with their lines (``yaml_nodes``), focus spans (``focus``) and the
``associations:`` list (``associations``). Nothing here knows a format; formats import from here."""
