"""Values the stages of ``ops`` agree on: the noise label and the reserved token ids.

Token ids follow the ingest contract: ``PAD`` fills sessions shorter than the batch,
``OOV`` stands for a page outside the vocabulary, and real pages start at ``FIRST_TOKEN``.
"""

#: The cluster label of points that no cluster claims (hdbscan's convention).
NOISE = -1
#: The token id of padding.
PAD = 0
#: The token id of a page outside the vocabulary.
OOV = 1
#: The token id of the most frequent page; real pages are ``>= FIRST_TOKEN``.
FIRST_TOKEN = 2
