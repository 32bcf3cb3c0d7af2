"""Shared phrase banks: post and reply templates, other languages, names, spam.

English templates fill the slots of a :class:`roost.sample.topics.TopicBank`:
``{s}`` subject, ``{c}`` claim, ``{a}`` action, ``{o}`` opinion, ``{q}`` question.
The other languages have small banks of their own: a few nouns per topic
(``{t}``) and templates placed so the noun never needs a contracted article.
"""

from __future__ import annotations


def _split(s: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in s.split("|"))


# Root posts: statements, then questions (a question's replies start with an answer).
STATEMENTS = _split(
    "{s} {c}.|Honestly, {s} {c}.|Hot take: {s} {c}.|Just {a}. {o}|Today I {a}. {o}|Can't believe {s} {c}. {o}|"
    "{o} {s} {c}.|Finally {a}!|Unpopular opinion: {s} {c}.|Not gonna lie, {s} {c}.|So {s} {c}... {o}|"
    "Yesterday I {a} and {s} {c}.|{o}"
)
QUESTIONS = _split(
    "{q}|Quick question: {q}|Anyone else think {s} {c}?|What do you all think about {s}?|"
    "Is it just me or {s} {c}?|Just {a}. {q}|Is {s} worth it?|Has anyone tried {s}?|"
    "Thoughts on {s}?|Be honest: {s}, yes or no?"
)

# Glue that multiplies the templates into a network that does not repeat itself: a statement may open
# with a lead-in, go on with a second sentence and close with a tail; none of it carries the topic.
LEAD_INS = _split(
    "Honestly,|Hot take:|Not gonna lie,|Unpopular opinion:|Real talk:|Okay so|Fun fact:|Can confirm:|"
    "Small update:|Controversial, but|Reminder:|PSA:|Late to this, but|For the record,|No joke,|Confession:|"
    "Update:|Plot twist:|Serious question aside,|After all this time,"
)
FOLLOW_UPS = _split(
    "{o2}|Also, {s2} {c2}.|Meanwhile {s2} {c2}.|And yes, I {a2}.|On top of that, {s2} {c2}.|"
    "Still can't believe I {a2}.|Next up: {s2}.|Related: {s2} {c2}."
)
TAILS = _split(
    "No regrets.|Still thinking about it.|Change my mind.|That's it, that's the post.|More on this later.|"
    "What a week.|Anyway.|Worth it.|Not sure how I feel about it.|Wild times.|Would do it again.|"
    "Mark my words.|Tell me I'm wrong.|Long story.|Big if true.|Noted for next time.|Learned a lot.|"
    "Can't stop smiling.|Deep breath.|Back to work now.|Happy with that.|Ask me anything.|Not even joking.|"
    "Weekend sorted.|Sleep can wait.|Thread later.|Send help.|Zero complaints.|Lesson learned.|Ten out of ten.|"
    "Day made.|Still laughing.|Off to bed.|Coffee first.|You heard it here first.|Make of that what you will.|"
    "Details soon.|Bookmarking this.|Just saying.|Again, no regrets."
)
# Reply openers by speech act, put before the body; the body names the parent's subject.
REPLY_OPENERS: dict[str, tuple[str, ...]] = {
    "agree": _split(
        "Totally agree.|100% this.|Exactly!|So true.|Couldn't agree more.|Same here.|This, all of this.|"
        "Yes!|Spot on.|Said it better than me.|Facts.|Right there with you."
    ),
    "disagree": _split(
        "Hard disagree.|Not so sure about that.|I see it differently.|Nah.|Respectfully, no.|"
        "Hmm, not really.|Counterpoint:|I'd push back on that.|Have to disagree.|Strong no from me."
    ),
    "ask": _split("Wait, really?|Interesting.|Hmm.|Huh.|Curious:|Genuine question:|Okay but|Hold on,"),
    "answer": _split(
        "Good question!|From my experience:|Short answer:|Honestly?|Easy one.|My two cents:|"
        "Depends, but|Been there.|Speaking from experience,|If you ask me,"
    ),
}

# Replies, by speech act. "ask" replies are questions, so they get answered in turn.
# {s} is the parent's subject when it has one, so a reply talks about what its parent said.
REPLIES: dict[str, tuple[str, ...]] = {
    "agree": _split("{o}|{s} {c}.|{s} {c}. {o}|I {a} too, and {s} {c}.|Same with {s}: it {c}.|{s} {c}, no doubt."),
    "disagree": _split(
        "{s} {c}, if anything.|{o}|I think {s} {c} instead.|{s}? It {c}, sorry.|Last time I {a}, {s} {c}."
    ),
    "ask": _split(
        "Why do you think {s} {c}?|{q}|How did that go? I never {a}.|Do you really think {s} {c}?|"
        "What makes {s} different?|Have you tried {s} yet?"
    ),
    "answer": _split(
        "I think {s} {c}.|{s} {c}.|{s} {c}. {o}|{o} {s} {c}.|Last year I {a}, and {s} {c}.|Go with {s}: it {c}."
    ),
}
# What a reply to a statement is; a reply to a question is always an answer.
REPLY_ACT_WEIGHTS = {"agree": 0.5, "disagree": 0.25, "ask": 0.25}

LANGUAGES = ("en", "es", "fr", "de", "pt")
LANGUAGE_WEIGHTS = (0.8, 0.07, 0.05, 0.04, 0.04)

# Topic nouns per language, in topic order of roost.sample.topics.TOPICS.
_FOREIGN_NOUNS = {
    "es": "el partido,el fútbol,el gol|el baloncesto,la NBA,el partido de baloncesto|la receta,la cocina,la paella|"
    "el viaje,las vacaciones,el vuelo|la película,el cine,la serie|el concierto,el disco nuevo,la canción|"
    "el videojuego,la consola,la partida|el móvil nuevo,el portátil,la actualización|"
    "la inteligencia artificial,el modelo de IA,el chatbot|la startup,la ronda de inversión,el emprendimiento|"
    "el bitcoin,las criptomonedas,la cartera cripto|el gimnasio,el entrenamiento,la carrera|"
    "la moda,la colección nueva,el look|las elecciones,el debate,el gobierno|"
    "el cambio climático,la ola de calor,la energía solar|la ciencia,el estudio,el telescopio|"
    "el libro,la novela,la lectura|mi perro,mi gato,la mascota|la fotografía,la cámara,la foto|"
    "el coche,el coche eléctrico,la conducción",
    "fr": "le match,le foot,le but|le basket,la NBA,le match de basket|la recette,la cuisine,la ratatouille|"
    "le voyage,les vacances,le vol|le film,le cinéma,la série|le concert,le nouvel album,la chanson|"
    "le jeu vidéo,la console,la partie|le nouveau téléphone,l'ordinateur portable,la mise à jour|"
    "l'intelligence artificielle,le modèle d'IA,le chatbot|la startup,la levée de fonds,l'entrepreneuriat|"
    "le bitcoin,les cryptos,le portefeuille crypto|la salle de sport,l'entraînement,la course à pied|"
    "la mode,la nouvelle collection,la tenue|les élections,le débat,le gouvernement|"
    "le climat,la canicule,l'énergie solaire|la science,l'étude,le télescope|le livre,le roman,la lecture|"
    "mon chien,mon chat,l'animal de compagnie|la photographie,l'appareil photo,la photo|"
    "la voiture,la voiture électrique,la conduite",
    "de": "das Spiel,der Fußball,das Derby|der Basketball,die NBA,das Basketballspiel|das Rezept,das Kochen,der Kuchen|"
    "die Reise,der Urlaub,der Flug|der Film,das Kino,die Serie|das Konzert,das neue Album,der Song|"
    "das Videospiel,die Konsole,die Runde|das neue Handy,der Laptop,das Update|"
    "die künstliche Intelligenz,das KI-Modell,der Chatbot|das Startup,die Finanzierungsrunde,die Gründung|"
    "der Bitcoin,die Kryptowährung,das Krypto-Wallet|das Fitnessstudio,das Training,der Lauf|"
    "die Mode,die neue Kollektion,das Outfit|die Wahl,die Debatte,die Regierung|"
    "der Klimawandel,die Hitzewelle,die Solarenergie|die Wissenschaft,die Studie,das Teleskop|"
    "das Buch,der Roman,das Lesen|mein Hund,meine Katze,das Haustier|die Fotografie,die Kamera,das Foto|"
    "das Auto,das Elektroauto,die Fahrt",
    "pt": "o jogo,o futebol,o gol|o basquete,a NBA,o jogo de basquete|a receita,a cozinha,a feijoada|"
    "a viagem,as férias,o voo|o filme,o cinema,a série|o show,o álbum novo,a música|"
    "o videogame,o console,a partida|o celular novo,o notebook,a atualização|"
    "a inteligência artificial,o modelo de IA,o chatbot|a startup,a rodada de investimento,o empreendedorismo|"
    "o bitcoin,as criptomoedas,a carteira cripto|a academia,o treino,a corrida|"
    "a moda,a coleção nova,o look|as eleições,o debate,o governo|"
    "a mudança climática,a onda de calor,a energia solar|a ciência,o estudo,o telescópio|"
    "o livro,o romance,a leitura|meu cachorro,meu gato,o pet|a fotografia,a câmera,a foto|"
    "o carro,o carro elétrico,a viagem de carro",
}
FOREIGN_NOUNS: dict[str, tuple[tuple[str, ...], ...]] = {
    lang: tuple(tuple(group.split(",")) for group in s.split("|")) for lang, s in _FOREIGN_NOUNS.items()
}

# Per language: statements, questions, and replies by act; {t} is a topic noun.
FOREIGN: dict[str, dict[str, tuple[str, ...]]] = {
    "es": {
        "statements": _split(
            "Me encanta {t}.|Hoy toca hablar de {t}.|Sinceramente, {t} me sorprendió hoy.|"
            "Opinión impopular: {t} no es para tanto.|No puedo dejar de pensar en {t}.|¡Qué día! Todo gira en torno a {t}.|"
            "Esta semana descubrí {t} de verdad.|Anoche, {t} fue el tema durante horas.|Nadie habla de esto: {t}.|"
            "Llevo todo el día con {t} en la cabeza."
        ),
        "questions": _split(
            "¿Qué opináis de {t}?|¿Alguien más está siguiendo {t}?|¿Me recomendáis algo sobre {t}?|"
            "Pregunta seria: ¿{t} merece la pena?"
        ),
        "agree": _split(
            "¡Totalmente de acuerdo! {t} es lo mejor.|Exacto, pienso lo mismo.|Justo lo que iba a decir.|"
            "Tal cual, {t} no decepciona."
        ),
        "disagree": _split(
            "No estoy de acuerdo, {t} está sobrevalorado.|Pues yo lo veo distinto.|Permíteme discrepar.|"
            "Para nada, {t} me dejó frío."
        ),
        "ask": _split(
            "¿En serio? ¿Por qué lo dices?|¿Y qué tal {t}?|¿Desde cuándo te interesa {t}?|¿Lo dices en broma?"
        ),
        "answer": _split(
            "Buena pregunta. Para mí, {t} es lo mejor.|Yo diría que {t}, sin duda.|Por experiencia: {t}, siempre.|"
            "Depende, pero yo me quedo con {t}."
        ),
    },
    "fr": {
        "statements": _split(
            "J'adore {t}.|Franchement, {t}, c'est incroyable.|Avis impopulaire : {t}, c'est surcoté.|"
            "Ce soir, {t} était génial.|Encore une journée consacrée à {t}.|Je ne pense qu'à {t} aujourd'hui.|"
            "Cette semaine, j'ai redécouvert {t}.|Personne n'en parle, et c'est dommage : {t}.|"
            "Hier soir, {t} a occupé toute la conversation.|Toute la journée, {t} m'a trotté dans la tête."
        ),
        "questions": _split(
            "{t}, vous en pensez quoi ?|Qui suit {t} en ce moment ?|Des conseils sur {t} ?|"
            "Question sérieuse : {t}, ça vaut le coup ?"
        ),
        "agree": _split(
            "Entièrement d'accord ! {t}, c'est top.|Exactement, je pense pareil.|C'est exactement ce que j'allais dire.|"
            "Tout à fait, {t} ne déçoit jamais."
        ),
        "disagree": _split(
            "Pas d'accord, {t}, c'est surcoté.|Je ne suis pas convaincu.|Je me permets de ne pas être d'accord.|"
            "Pas du tout, {t} m'a laissé froid."
        ),
        "ask": _split("Vraiment ? Pourquoi tu dis ça ?|Et {t}, alors ?|Depuis quand tu suis {t} ?|Tu plaisantes ?"),
        "answer": _split(
            "Bonne question. Pour moi, {t}, c'est le meilleur.|Je dirais {t}, sans hésiter.|Par expérience : {t}, toujours.|"
            "Ça dépend, mais je choisis {t}."
        ),
    },
    "de": {
        "statements": _split(
            "{t} war heute unglaublich.|Ehrlich gesagt ist {t} überbewertet.|Ich liebe es: {t}!|"
            "Unpopuläre Meinung: {t} wird gehypt.|Heute dreht sich alles um eins: {t}.|Endlich Wochenende und {t}.|"
            "Diese Woche neu entdeckt: {t}.|Gestern Abend stundenlang diskutiert: {t}.|"
            "Keiner redet darüber, schade eigentlich: {t}.|Den ganzen Tag im Kopf: {t}."
        ),
        "questions": _split(
            "{t}: was meint ihr?|Wer verfolgt gerade auch {t}?|Habt ihr Tipps? Thema: {t}.|Ernste Frage: lohnt sich {t}?"
        ),
        "agree": _split(
            "Stimmt total! {t} ist einfach top.|Genau, sehe ich auch so.|Wollte ich gerade sagen.|"
            "Absolut, {t} enttäuscht nie."
        ),
        "disagree": _split(
            "Sehe ich anders, {t} ist überbewertet.|Da bin ich nicht sicher.|Da muss ich widersprechen.|"
            "Überhaupt nicht, {t} hat mich kaltgelassen."
        ),
        "ask": _split("Echt jetzt? Warum?|Und wie war {t}?|Seit wann interessiert dich {t}?|Meinst du das ernst?"),
        "answer": _split(
            "Gute Frage. Für mich ist {t} das Beste.|Ich würde sagen: {t}, ganz klar.|Aus Erfahrung: {t}, immer.|"
            "Kommt drauf an, aber für mich: {t}."
        ),
    },
    "pt": {
        "statements": _split(
            "Eu amo {t}.|Sinceramente, {t} foi incrível hoje.|Opinião impopular: {t} não é tudo isso.|"
            "Hoje só se fala de uma coisa: {t}.|Ainda pensando em tudo isso: {t}.|Que dia! {t} salvou a semana.|"
            "Essa semana eu redescobri {t}.|Ontem à noite o assunto foi um só: {t}.|"
            "Ninguém comenta isso, e deveria: {t}.|O dia todo com isso na cabeça: {t}."
        ),
        "questions": _split(
            "{t}: o que vocês acham?|Alguém mais acompanhando {t}?|Alguma dica sobre {t}?|"
            "Pergunta séria: {t} vale a pena?"
        ),
        "agree": _split(
            "Concordo totalmente! {t} é demais.|Exatamente, penso igual.|Era bem isso que eu ia dizer.|"
            "Com certeza, {t} nunca decepciona."
        ),
        "disagree": _split(
            "Discordo, {t} é superestimado.|Não tenho tanta certeza.|Vou ter que discordar.|"
            "Nada disso, {t} me deixou frio."
        ),
        "ask": _split("Sério? Por quê?|E {t}, como foi?|Desde quando você curte {t}?|Tá falando sério?"),
        "answer": _split(
            "Boa pergunta. Pra mim, {t} é o melhor.|Eu diria {t}, sem dúvida.|Por experiência: {t}, sempre.|"
            "Depende, mas eu fico com {t}."
        ),
    },
}

# Per language: tails that close a post or reply, as TAILS does in English.
FOREIGN_TAILS = {
    "es": _split(
        "Sin duda.|Qué semana.|Lo repetiría.|Ya os contaré.|Ni de broma.|Vaya día.|Me lo apunto.|"
        "Y punto.|Sin arrepentimientos.|Qué ganas.|Lo dicho.|Mañana más.|Cero quejas.|Palabra.|Qué risa.|"
        "A dormir.|Primero café.|Os leo.|Lección aprendida.|Diez de diez."
    ),
    "fr": _split(
        "Sans regret.|Quelle semaine.|Je recommence quand vous voulez.|À suivre.|Sans rire.|"
        "Quelle journée.|Je note.|Point final.|Trop hâte.|Voilà.|Rien à ajouter.|La suite demain.|Aucun regret.|"
        "Promis.|Je ris encore.|Au lit.|Café d'abord.|Je vous lis.|Leçon retenue.|Dix sur dix."
    ),
    "de": _split(
        "Ohne Reue.|Was für eine Woche.|Gerne wieder.|Mehr dazu später.|Kein Witz.|Was für ein Tag.|"
        "Notiert.|Punkt.|Ich freu mich.|Na ja.|Mehr gibt es nicht zu sagen.|Morgen mehr.|Keine Beschwerden.|"
        "Versprochen.|Ich lache immer noch.|Ab ins Bett.|Erst mal Kaffee.|Ich lese mit.|Wieder was gelernt.|"
        "Zehn von zehn."
    ),
    "pt": _split(
        "Sem arrependimentos.|Que semana.|Faria de novo.|Depois conto mais.|Sem brincadeira.|"
        "Que dia.|Anotado.|E pronto.|Que vontade.|Enfim.|Falei.|Amanhã tem mais.|Zero reclamações.|"
        "Prometo.|Ainda rindo.|Hora de dormir.|Primeiro o café.|Tô lendo vocês.|Lição aprendida.|Nota dez."
    ),
}

# Per language: lead-ins that may open a post, as LEAD_INS do in English.
FOREIGN_LEAD_INS = {
    "es": _split("Bueno,|A ver,|Os cuento:|Confesión:|Dato curioso:|Actualización:|Para que conste,|Sin más,"),
    "fr": _split("Bon,|Alors,|Petite mise à jour :|Confession :|Le saviez-vous :|Pour info,|Soyons clairs,|Bref,"),
    "de": _split("Also,|Kurzes Update:|Geständnis:|Fun Fact:|Mal ehrlich,|Nur zur Info:|Ganz ehrlich:|Tja,"),
    "pt": _split("Bom,|Então,|Confissão:|Curiosidade:|Atualização:|Só pra registrar,|Vou falar:|Enfim,"),
}

FIRST_NAMES = {
    "en": _split("James|Olivia|Liam|Emma|Noah|Ava|Ethan|Mia|Lucas|Chloe|Ryan|Grace|Daniel|Zoe|Sam|Priya|Omar|Mei"),
    "es": _split("Sofía|Mateo|Lucía|Diego|Valentina|Javier|Carmen|Alejandro"),
    "fr": _split("Camille|Louis|Chloé|Hugo|Léa|Antoine|Manon|Julien"),
    "de": _split("Lukas|Anna|Felix|Lena|Jonas|Marie|Paul|Sophie"),
    "pt": _split("João|Ana|Pedro|Beatriz|Gabriel|Mariana|Rafael|Larissa"),
}
LAST_NAMES = {
    "en": _split("Smith|Johnson|Brown|Taylor|Wilson|Davies|Evans|Patel|Nguyen|Kim|Walker|Clarke|Hughes|Khan"),
    "es": _split("García|Martínez|López|Sánchez|Romero|Torres|Ruiz|Navarro"),
    "fr": _split("Martin|Bernard|Dubois|Lefèvre|Moreau|Laurent|Girard|Roux"),
    "de": _split("Müller|Schmidt|Schneider|Fischer|Weber|Becker|Wagner|Hoffmann"),
    "pt": _split("Silva|Santos|Oliveira|Souza|Pereira|Costa|Rodrigues|Almeida"),
}

# Dirt.
SPAM_HOOKS = _split(
    "FREE giveaway!!! Claim your prize now|Make $5000 a week from home, no experience needed|"
    "100x gains guaranteed, join the signal group|You have been selected! Click to claim|"
    "Hot singles in your area|Last chance: 90% OFF everything"
)
# Reply spam: a bot answers an organic post with a pitch and one link.
SPAM_REPLY_HOOKS = _split(
    "Great post! I made $3,000 this week with this|Love this! DM me for a paid collab|"
    "So true. Check the link in my bio for free crypto|This changed my life, trust me|"
    "Nice! Claim your free gift card before it ends"
)
SPAM_TAGS = _split("win|free|giveaway|crypto|airdrop|money|followback|promo|deal|bitcoin|rich|sale")
SPAM_DOMAINS = _split("bit.ly|tinyurl.com|free-prizes.example|win-big.example")
EMAIL_DOMAINS = _split("example.com|example.org|mail.example.net")
PII_TEMPLATES = _split(
    "Email me at {email} for details.|DM me or write to {email}|Questions? Call {phone}|"
    "Text me on {phone} if you want in.|Contact: {email} / {phone}"
)
# Numbers from ranges reserved for fiction (US 555-01xx, UK 07700 900xxx) or made up (DE).
PHONE_FORMATS = _split("+1 (415) 555-01{d2}|555-01{d2}|+44 7700 900{d3}|+49 30 {d4}{d3}|(212) 555-01{d2}")
# Words a near-duplicate swaps in or out; small edits keep it near, not exact.
NEAR_DUP_WORDS = {
    "en": _split("really|so|totally|just|honestly|literally|actually|seriously"),
    "es": _split("muy|realmente|totalmente|sinceramente"),
    "fr": _split("vraiment|trop|carrément|franchement"),
    "de": _split("echt|total|wirklich|einfach"),
    "pt": _split("muito|realmente|totalmente|mesmo"),
}
URL_SITES = _split("news.example.com|blog.example.org|www.example.net|media.example.com")
