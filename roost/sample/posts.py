"""Posts: on-topic text from the phrase banks, reply threads, engagement, and the dirt of real data.

Generation happens on :class:`Post` records that point at each other by list
index; :mod:`roost.sample.generate` sorts them by time, gives them snowflake ids
and renders them as API v2 tweets.
"""

from __future__ import annotations

import codecs
import math
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from roost.sample.network import Sampler, User, ascii_slug, topic_samplers
from roost.sample.phrases import (
    EMAIL_DOMAINS,
    FOLLOW_UPS,
    FOREIGN,
    FOREIGN_LEAD_INS,
    FOREIGN_NOUNS,
    FOREIGN_TAILS,
    LEAD_INS,
    NEAR_DUP_WORDS,
    PHONE_FORMATS,
    PII_TEMPLATES,
    QUESTIONS,
    REPLIES,
    REPLY_ACT_WEIGHTS,
    REPLY_OPENERS,
    SPAM_DOMAINS,
    SPAM_HOOKS,
    SPAM_REPLY_HOOKS,
    SPAM_TAGS,
    STATEMENTS,
    TAILS,
    URL_SITES,
)
from roost.sample.topics import BANKS, TOPICS

MAX_DEPTH = 6
FOREIGN_IN_OWN_LANGUAGE = 0.85
# Extra posts, as a share of all posts; "modified" dirt rewrites that share of organic posts.
EXTRA_RATES = {"retweet": 0.05, "quote": 0.01, "duplicate": 0.02, "near_duplicate": 0.02, "spam": 0.02, "empty": 0.01}
MODIFIED_RATES = {"pii": 0.02, "html_entities": 0.02, "mojibake": 0.02}
MIN_POSTS_FOR_ALL_DIRT = 50
NEAR_DUP_MIN_WORDS = 16
SHORT_BODY_WORDS = 8  # a template filled to fewer words always gets a second sentence
SPAM_STYLES = {"stuffing": 0.4, "campaign": 0.35, "reply": 0.25}  # share of spam posts (see PostMaker._spam)

_CAPITALIZE = re.compile(r"(^|[.!?]\s+)([¡¿]?)([^\W\d_])")
_ALNUM = string.ascii_letters + string.digits


def _latin1_fallback(err: UnicodeDecodeError) -> tuple[str, int]:
    return err.object[err.start : err.end].decode("latin-1"), err.end


# cp1252 leaves five bytes undefined; real mojibake shows them as their latin-1 characters.
codecs.register_error("roost_sample_latin1", _latin1_fallback)


def mojibake(text: str) -> str:
    """UTF-8 bytes read back as cp1252: 'café ⚽' -> 'cafÃ© âš½'."""
    return text.encode("utf-8").decode("cp1252", errors="roost_sample_latin1")


@dataclass(slots=True)
class Post:
    author: int
    ms: int
    text: str
    lang: str
    topic: str | None
    kind: str  # post | reply | retweet | quote | duplicate | near_duplicate | spam | empty
    parent: int | None = None  # index of the post this replies to
    root: int | None = None  # index of the conversation's root; None: the post is its own root
    ref: int | None = None  # index of the retweeted / quoted / copied post
    depth: int = 0
    act: str | None = None  # a reply's speech act: agree | disagree | ask | answer
    subject: str | None = None  # what an English post is about (a TopicBank subject); its replies take it up
    question: bool = False
    dirt: list[str] = field(default_factory=list)
    urls: dict[str, str | None] = field(default_factory=dict)  # t.co -> target; None: the quoted tweet
    likes: int = 0
    retweets: int = 0
    replies: int = 0
    quotes: int = 0


def _capitalize(text: str) -> str:
    return _CAPITALIZE.sub(lambda m: m.group(1) + m.group(2) + m.group(3).upper(), text)


class PostMaker:
    def __init__(self, rng: random.Random, users: list[User], start_ms: int, span_ms: int):
        self.rng, self.users, self.start_ms, self.span_ms = rng, users, start_ms, span_ms
        posters = [u for u in users if not u.spam]
        self.posters = Sampler([u.idx for u in posters], [u.activity for u in posters])
        self.by_topic = topic_samplers(users, "activity")
        self.spammers = [u.idx for u in users if u.spam] or [posters[0].idx]
        self.username_to_idx = {u.username: u.idx for u in users}

    # --- text -----------------------------------------------------------------

    def _lang(self, user: User) -> str:
        if user.lang != "en" and self.rng.random() < FOREIGN_IN_OWN_LANGUAGE:
            return user.lang
        return "en"

    def _slots(self, topic: str, lang: str, subject: str | None) -> dict[str, str]:
        """Template slots; ``subject`` (the parent's, for a reply) stands in for a fresh one."""
        r = self.rng
        if lang != "en":
            return {"t": r.choice(FOREIGN_NOUNS[lang][TOPICS.index(topic)])}
        b = BANKS[topic]
        return {
            "s": subject or r.choice(b.subjects),
            "c": r.choice(b.claims),
            "a": r.choice(b.actions),
            "o": r.choice(b.opinions),
            "q": r.choice(b.questions),
            "s2": r.choice(b.subjects),
            "c2": r.choice(b.claims),
            "a2": r.choice(b.actions),
            "o2": r.choice(b.opinions),
        }

    def _fill(
        self,
        templates: tuple[str, ...],
        topic: str,
        lang: str,
        subject: str | None = None,
        opener: str | None = None,
        reply: bool = False,
    ) -> tuple[str, str | None]:
        """A text from one of ``templates`` with glue around it (a lead-in or reply opener, a second
        sentence, a tail: see phrases.LEAD_INS; a reply gets no lead-in), so that organic posts seldom repeat;
        and the subject its template names, if any."""
        r = self.rng
        slots = self._slots(topic, lang, subject)
        parts = [opener] if opener else []
        if not opener and not reply and r.random() < 0.35:
            parts.append(r.choice(LEAD_INS if lang == "en" else FOREIGN_LEAD_INS[lang]))
        template = r.choice(templates)
        parts.append(template.format(**slots))
        if r.random() < 0.7 or len(parts[-1].split()) < SHORT_BODY_WORDS:  # a short body alone repeats often
            if lang == "en":
                parts.append(r.choice(FOLLOW_UPS).format(**slots))
            else:
                second = r.choice([t for t in FOREIGN[lang]["statements"] if t != template])
                parts.append(second.format(**self._slots(topic, lang, None)))
        if r.random() < 0.8:
            parts.append(r.choice(TAILS if lang == "en" else FOREIGN_TAILS[lang]))
        return _capitalize(" ".join(parts)), slots["s"] if "{s}" in template else None  # only a subject it names

    def _tco(self) -> str:
        return "https://t.co/" + "".join(self.rng.choices(_ALNUM, k=10))

    def _decorate(self, text: str, user: User, topic: str) -> tuple[str, dict[str, str | None]]:
        r, b, urls = self.rng, BANKS[topic], {}
        if user.followees and r.random() < 0.08:
            who = self.users[r.choice(user.followees)].username
            text = f"@{who} {text}" if r.random() < 0.5 else f"{text} cc @{who}"
        if r.random() < 0.08:
            tco = self._tco()
            slug = ascii_slug(r.choice(b.subjects))[:24]
            urls[tco] = f"https://{r.choice(URL_SITES)}/{topic}/{slug}-{r.randrange(1000, 99999)}"
            text += " " + tco
        if r.random() < 0.45:
            text += " " + " ".join("#" + t for t in r.sample(b.hashtags, r.choice((1, 1, 2))))
        if r.random() < 0.04:
            text += " #" + r.choice(b.rare_hashtags)
        if r.random() < 0.3:
            text += " " + r.choice(b.emoji)
        return text, urls

    def root(self, user: User, topic: str, ms: int) -> Post:
        lang = self._lang(user)
        question = self.rng.random() < 0.25
        if lang == "en":
            body, subject = self._fill(QUESTIONS if question else STATEMENTS, topic, lang)
        else:
            body, subject = self._fill(FOREIGN[lang]["questions" if question else "statements"], topic, lang)
        text, urls = self._decorate(body, user, topic)
        return Post(user.idx, ms, text, lang, topic, "post", question=question, urls=urls, subject=subject)

    def reply(self, user: User, parent: Post, parent_idx: int, root_idx: int, act: str) -> Post:
        lang = self._lang(user)
        if lang == "en":  # an English reply names its parent's subject (when the parent is English too)
            body, subject = self._fill(
                REPLIES[act], parent.topic, lang, parent.subject, self.rng.choice(REPLY_OPENERS[act])
            )
        else:
            body, subject = self._fill(FOREIGN[lang][act], parent.topic, lang, reply=True)
        if self.rng.random() < 0.15:
            body += " " + self.rng.choice(BANKS[parent.topic].emoji)
        ms = parent.ms + 30_000 + int(self.rng.expovariate(1 / 3_600_000))
        text = f"@{self.users[parent.author].username} {body}"
        return Post(
            user.idx,
            ms,
            text,
            lang,
            parent.topic,
            "reply",
            parent=parent_idx,
            root=root_idx,
            depth=parent.depth + 1,
            act=act,
            question=act == "ask",
            subject=subject,
        )

    # --- threads --------------------------------------------------------------

    def organic(self, n: int, on_progress: Callable[[int], object] = lambda k: None) -> list[Post]:
        """``n`` posts in threads: a root and 0-15 replies, at most MAX_DEPTH deep.

        Every question (a root question or an "ask" reply) is answered before the
        thread moves on, as long as the post budget ``n`` lasts.
        """
        r, posts = self.rng, []
        while len(posts) < n:
            on_progress(len(posts))
            author = self.users[self.posters.draw(r)]
            topic = r.choices(list(author.interests), weights=list(author.interests.values()))[0]
            root_idx = len(posts)
            root = self.root(author, topic, self.start_ms + r.randrange(self.span_ms))
            posts.append(root)
            n_replies = 0 if r.random() < 0.45 and not root.question else min(1 + int(r.expovariate(1 / 2.5)), 15)
            thread, unanswered = [root_idx], [root_idx] if root.question else []
            while (len(thread) <= n_replies or unanswered) and len(posts) < n:
                if unanswered:
                    parent_idx = unanswered.pop()
                else:
                    parent_idx = thread[-1] if r.random() < 0.6 else r.choice(thread)
                    while posts[parent_idx].depth >= MAX_DEPTH:
                        parent_idx = posts[parent_idx].parent
                parent = posts[parent_idx]
                if parent.question:
                    act = "answer"
                else:  # no questions at the deepest level: they could not be answered
                    acts = [a for a in REPLY_ACT_WEIGHTS if a != "ask" or parent.depth + 1 < MAX_DEPTH]
                    act = r.choices(acts, weights=[REPLY_ACT_WEIGHTS[a] for a in acts])[0]
                replier = self._replier(parent, root, topic)
                if act == "ask":
                    unanswered.append(len(posts))
                thread.append(len(posts))
                posts.append(self.reply(self.users[replier], parent, parent_idx, root_idx, act))
        on_progress(len(posts))
        return posts

    def _replier(self, parent: Post, root: Post, topic: str) -> int:
        """The root's author answers back now and then; otherwise someone into the topic."""
        r = self.rng
        if parent.author != root.author and r.random() < 0.35:
            return root.author
        pool = self.by_topic[topic] or self.posters
        who = pool.draw(r)
        return pool.draw(r) if who == parent.author else who

    # --- dirt -----------------------------------------------------------------

    def modify(self, posts: list[Post]) -> None:
        """Rewrite a few percent of organic posts with PII, HTML entities or mojibake (one kind each)."""
        r = self.rng
        want = {k: _count(len(posts), rate) for k, rate in MODIFIED_RATES.items()}
        chosen = r.sample(range(len(posts)), min(len(posts), sum(want.values())))
        for kind, count in want.items():
            for i in chosen[:count]:
                p = posts[i]
                p.text = getattr(self, f"_{kind}")(p)
                p.dirt.append(kind)
            chosen = chosen[count:]

    def _pii(self, p: Post) -> str:
        r, u = self.rng, self.users[p.author]
        first, _, last = u.name.partition(" ")
        email = f"{ascii_slug(first)}.{ascii_slug(last)}{r.randrange(100)}@{r.choice(EMAIL_DOMAINS)}"
        phone = r.choice(PHONE_FORMATS).format(
            d2=f"{r.randrange(100):02d}", d3=f"{r.randrange(1000):03d}", d4=f"{r.randrange(10000):04d}"
        )
        return f"{p.text} {r.choice(PII_TEMPLATES).format(email=email, phone=phone)}"

    def _html_entities(self, p: Post) -> str:
        if " and " in p.text:
            return p.text.replace(" and ", " &amp; ", 1)
        return p.text + self.rng.choice((" &lt;3", " Q&amp;A later", " 10/10 &gt; everything"))

    def _mojibake(self, p: Post) -> str:
        text = p.text if not p.text.isascii() else f"{p.text} {self.rng.choice(BANKS[p.topic].emoji)}"
        return mojibake(text)

    def extras(self, organic: list[Post], n_total: int) -> list[Post]:
        """Retweets, quotes, exact and near duplicates, spam and empty posts; they index into ``organic``."""
        r, out = self.rng, []
        roots = [i for i, p in enumerate(organic) if p.kind == "post"]
        if not roots:
            return out
        # a word or two changed in a short post is a different post by ingest's measure (word-shingle Jaccard)
        long_roots = [i for i in roots if len(organic[i].text.split()) >= NEAR_DUP_MIN_WORDS] or roots
        for kind, rate in EXTRA_RATES.items():
            for _ in range(_count(n_total, rate)):
                src_idx = r.choice(long_roots if kind == "near_duplicate" else roots)
                out.append(getattr(self, f"_{kind}")(organic[src_idx], src_idx))
        return out

    def _someone_else(self, than: int) -> int:
        who = self.posters.draw(self.rng)
        return who if who != than else self.posters.draw(self.rng)

    def _later(self, ms: int) -> int:
        return ms + 60_000 + int(self.rng.expovariate(1 / 14_400_000))

    def _retweet(self, src: Post, src_idx: int) -> Post:
        text = f"RT @{self.users[src.author].username}: {src.text}"
        return Post(
            self._someone_else(src.author),
            self._later(src.ms),
            text,
            src.lang,
            src.topic,
            "retweet",
            ref=src_idx,
            dirt=list(src.dirt),
            urls=dict(src.urls),
        )

    def _quote(self, src: Post, src_idx: int) -> Post:
        quoter = self.users[self._someone_else(src.author)]
        act = self.rng.choice(("agree", "disagree"))
        body, _ = self._fill(REPLIES[act], src.topic, "en", src.subject, self.rng.choice(REPLY_OPENERS[act]))
        tco = self._tco()
        return Post(
            quoter.idx, self._later(src.ms), f"{body} {tco}", "en", src.topic, "quote", ref=src_idx, urls={tco: None}
        )

    def _copy(self, src: Post, src_idx: int, kind: str, text: str) -> Post:
        author = src.author if self.rng.random() < 0.4 else self._someone_else(src.author)
        ms = self.start_ms + self.rng.randrange(self.span_ms)
        return Post(
            author,
            ms,
            text,
            src.lang,
            src.topic,
            kind,
            ref=src_idx,
            question=src.question,
            dirt=list(src.dirt),
            urls=dict(src.urls),
        )

    def _duplicate(self, src: Post, src_idx: int) -> Post:
        return self._copy(src, src_idx, "duplicate", src.text)

    def _near_duplicate(self, src: Post, src_idx: int) -> Post:
        """Add a filler word or two at the end, or swap the last word for one: an edit that touches one or two
        word shingles, so the copy is near by ingest's measure (Jaccard >= 0.8 of 3-word shingles). A copy of a
        post with dirt only adds: a swap could take the phone number or the mojibake its truth records."""
        r, words, fillers = self.rng, src.text.split(" "), NEAR_DUP_WORDS[src.lang]
        if r.random() < 0.3 and len(words) > 2 and not src.dirt:
            words[-1] = r.choice([f for f in fillers if f != words[-1]])
        else:
            words += r.sample(fillers, r.choice((1, 1, 2)))
        return self._copy(src, src_idx, "near_duplicate", " ".join(words))

    def _spam_link(self) -> str:
        return f"https://{self.rng.choice(SPAM_DOMAINS)}/{''.join(self.rng.choices(_ALNUM, k=7))}"

    def _spam(self, src: Post, src_idx: int) -> Post:
        """Three kinds, as on real platforms: link and tag stuffing; one pitch posted by many bot accounts
        with a single link and a tag or none; and a pitch posted as a reply under an organic post."""
        r = self.rng
        style = r.choices(list(SPAM_STYLES), weights=list(SPAM_STYLES.values()))[0]
        if style == "reply":
            text = f"@{self.users[src.author].username} {r.choice(SPAM_REPLY_HOOKS)} {self._spam_link()}"
            return Post(
                r.choice(self.spammers),
                self._later(src.ms),
                text,
                "en",
                None,
                "spam",
                parent=src_idx,
                root=src_idx,
                depth=1,
            )
        if style == "stuffing":
            links = " ".join(self._spam_link() for _ in range(r.randint(2, 4)))
            tags = r.sample(SPAM_TAGS, r.randint(5, 9)) + list(BANKS[src.topic].hashtags[:2])
        else:  # campaign
            links, tags = self._spam_link(), r.sample(SPAM_TAGS, r.choice((0, 0, 1, 2)))
        text = " ".join([r.choice(SPAM_HOOKS), links, *("#" + t for t in tags)])
        return Post(r.choice(self.spammers), self.start_ms + r.randrange(self.span_ms), text, "en", None, "spam")

    def _empty(self, src: Post, src_idx: int) -> Post:
        ms = self.start_ms + self.rng.randrange(self.span_ms)
        return Post(self.posters.draw(self.rng), ms, self.rng.choice(("", " ", "\n")), "und", None, "empty")


def _count(n: int, rate: float) -> int:
    """How many posts of a dirt kind: ``rate`` of ``n``, at least one once the sample is not tiny."""
    k = round(n * rate)
    return max(k, 1) if n >= MIN_POSTS_FOR_ALL_DIRT else k


def n_extras(n: int) -> int:
    """How many of ``n`` posts are extras (retweets, duplicates, spam, ...) rather than organic."""
    return sum(_count(n, rate) for rate in EXTRA_RATES.values())


def engagement(rng: random.Random, posts: list[Post], users: list[User]) -> None:
    """Counts consistent with the sample (replies, retweets and quotes it holds) plus likes by fame."""
    for p in posts:
        if p.parent is not None:
            posts[p.parent].replies += 1
        if p.kind in ("retweet", "quote"):
            setattr(posts[p.ref], f"{p.kind}s", getattr(posts[p.ref], f"{p.kind}s") + 1)
    for p in posts:
        if p.kind in ("retweet", "empty"):
            continue
        followers = users[p.author].followers
        p.likes = int(rng.lognormvariate(0.9 * math.log1p(followers) - 1.0, 1.0))
        p.retweets = max(p.retweets, int(p.likes * rng.uniform(0.02, 0.3)))
    for p in posts:
        if p.kind == "retweet":  # as in the API: a retweet shows its original's retweet count
            p.retweets = posts[p.ref].retweets
