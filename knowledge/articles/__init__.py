"""Help-center articles: Markdown/MDX, HTML, plain text and PDF files read into sections and blocks.

`read_articles(folder, base_url, previous)` reads every supported file under a folder (any depth)
into `Article` records and returns them with every problem found (file and line);
`read_article(path, root, base_url)` reads one and raises `ArticleError`. An article keeps its
title, link, tags and sections in document order; a section is the text under one heading path,
in blocks (prose, a list, a code block, a table row) that passages are cut between. This package
never imports `bot/` or `adapters/`: a knowledge base reads the same in every channel.
"""

from knowledge.articles._model import Article, Block, BlockKind, Section
from knowledge.articles._reader import ARTICLE_SUFFIXES, ArticleError, read_article, read_articles

__all__ = ["ARTICLE_SUFFIXES", "Article", "ArticleError", "Block", "BlockKind", "Section", "read_article",
           "read_articles"]
