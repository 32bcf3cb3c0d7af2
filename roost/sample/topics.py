"""English phrase banks for the sample network's topics.

Each topic has its own words in every slot (subjects, claims, actions, ...), so a
small language model can learn the text and a classifier can tell a post's topic
from its words. Posts combine these slots through the shared templates in
:mod:`roost.sample.phrases`; every claim reads correctly after every subject of
its topic ("<subject> <claim>."), every action after "Just" / "Today I".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicBank:
    subjects: tuple[str, ...]  # singular noun phrases a post is about
    claims: tuple[str, ...]  # verb phrases that follow a subject
    actions: tuple[str, ...]  # first-person past-tense activities
    opinions: tuple[str, ...]  # short standalone sentences
    questions: tuple[str, ...]  # topic questions (end with "?")
    hashtags: tuple[str, ...]  # common tags, without '#'
    rare_hashtags: tuple[str, ...]
    emoji: tuple[str, ...]
    keywords: tuple[str, ...]  # ad targeting keywords
    products: tuple[str, ...]  # what advertisers of the topic sell
    brands: tuple[str, ...]  # advertiser name stems
    related: tuple[str, ...]  # topics a campaign may also target


def _bank(**fields: str) -> TopicBank:
    """Fields are written as '|'-separated strings to keep the banks compact."""
    return TopicBank(**{k: tuple(s.strip() for s in v.split("|")) for k, v in fields.items()})


BANKS: dict[str, TopicBank] = {
    "football": _bank(
        subjects="the derby|the Champions League final|our new striker|the transfer window|VAR|the away kit|"
        "the midfield|the manager|our keeper|the title race",
        claims="was an absolute masterclass|needs a proper left back|is killing the game|keeps giving away penalties|"
        "looked sharp in the second half|deserves a new contract|was robbed by the referee|won us the match",
        actions="watched the match at the pub|bought tickets for the derby|played five-a-side after work|"
        "stayed up for the late kickoff|signed up for the fantasy league",
        opinions="What a goal!|The ref was shocking tonight.|Three points is all that matters.|"
        "Defending like that will cost us the league.|Best atmosphere in the stadium all season.",
        questions="Who starts up front on Saturday?|Is the manager under pressure after that result?|"
        "Will we finish in the top four this season?",
        hashtags="football|PremierLeague|UCL|matchday",
        rare_hashtags="groundhopping|NonLeague|TifoFriday",
        emoji="⚽|🥅|🏟️",
        keywords="football|soccer|match tickets|jersey|football boots|premier league",
        products="football boots|replica jerseys|season tickets|training cones|goalkeeper gloves",
        brands="GoalLine|Kickoff|Striker",
        related="basketball|fitness",
    ),
    "basketball": _bank(
        subjects="the NBA trade deadline|our point guard|the playoff race|the rookie|the bench unit|"
        "the three-point shooting|the coach|the dunk contest|the rebounding|the defense",
        claims="was unstoppable in the fourth quarter|needs to stop forcing threes|is carrying the whole team|"
        "deserves to be an All-Star|fell apart in overtime|put up a triple-double|looked lost on defense|"
        "changed the whole series",
        actions="shot hoops at the park|watched the playoff game with friends|got courtside seats|"
        "stayed up for the West Coast game|practiced free throws all morning",
        opinions="That buzzer beater was unreal!|Defense wins championships.|Free throws lost us that game.|"
        "The league has never been this fun to watch.|Ball movement was beautiful tonight.",
        questions="Who wins MVP this year?|Should we trade for a big man before the deadline?|"
        "Is this the year we finally make the finals?",
        hashtags="NBA|basketball|hoops|NBAPlayoffs",
        rare_hashtags="WNBA|StreetballLife|EuroLeague",
        emoji="🏀|⛹️|🔥",
        keywords="basketball|nba|sneakers|hoop|courtside tickets|jersey",
        products="basketball sneakers|indoor basketballs|courtside tickets|hoop sets|compression sleeves",
        brands="Courtside|Swish|Rimshot",
        related="football|fitness",
    ),
    "cooking": _bank(
        subjects="this sourdough starter|my grandmother's lasagna|the cast iron pan|the new ramen recipe|"
        "homemade pasta|the spice drawer|this curry|slow-roasted garlic|the farmers market haul|my pizza oven",
        claims="turned out perfectly crispy|needs way more salt|is worth the three-hour wait|tastes even better the next day|"
        "burned on the bottom again|smells amazing right now|is the easiest weeknight dinner|impressed the whole family",
        actions="baked bread for the first time|tried a new pasta recipe|meal prepped for the whole week|"
        "made dumplings from scratch|cooked dinner for ten people",
        opinions="Butter makes everything better.|Fresh herbs change everything.|Never skip the resting time.|"
        "Cooking is cheaper than therapy.|Season as you go, always.",
        questions="What is your go-to weeknight dinner?|How long do you rest your dough?|"
        "Any tips for getting a crispy crust?",
        hashtags="cooking|recipe|foodie|homecooking",
        rare_hashtags="fermentation|CastIronCooking|PastaFromScratch",
        emoji="🍳|🍝|🥘",
        keywords="recipe|cooking|kitchen|cookware|chef knife|meal kit",
        products="chef knives|cast iron pans|meal kits|stand mixers|spice sets",
        brands="Skillet|Saffron|Hearth",
        related="fitness|travel",
    ),
    "travel": _bank(
        subjects="this trip to Lisbon|the overnight train|my carry-on bag|the hostel in Kyoto|the road trip|"
        "the airport lounge|this beach town|the hiking trail|the flight delay|the old town",
        claims="was worth every penny|took way longer than planned|is the best way to see the country|"
        "blew me away at sunrise|was packed with tourists|changed how I think about travel|needs to be on everyone's list|"
        "cost half of what I expected",
        actions="booked a last-minute flight|packed everything into one backpack|got lost in the old town|"
        "missed my connecting flight|watched the sunset from the ferry",
        opinions="Travel light, always.|Window seat or nothing.|The best meals are never near the tourist spots.|"
        "Slow travel beats rushing ten cities.|Jet lag is a small price to pay.",
        questions="Where should I go for a week in spring?|Is it worth getting a rail pass?|"
        "What is one place everyone should visit once?",
        hashtags="travel|wanderlust|travelgram|roadtrip",
        rare_hashtags="SlowTravel|NightTrain|HostelLife",
        emoji="✈️|🌍|🧳",
        keywords="travel|flights|hotel|vacation|backpack|rail pass",
        products="cheap flights|boutique hotels|travel backpacks|rail passes|travel insurance",
        brands="Wayfar|Nomad|Compass",
        related="photography|cooking",
    ),
    "movies": _bank(
        subjects="the new Nolan film|this sequel|the director's cut|the soundtrack|the ending|the lead actor|"
        "the trailer|the plot twist|the opening scene|this horror movie",
        claims="deserves every Oscar|was way too long|completely ruined the franchise|gave me chills|"
        "is better than the original|made no sense at all|had the whole cinema in tears|needs a second watch",
        actions="watched three films back to back|saw the premiere at midnight|rewatched the whole trilogy|"
        "finally went to the cinema again|started a movie marathon",
        opinions="Cinema is back!|No spoilers, but wow.|Practical effects still beat CGI.|"
        "The book was better, as usual.|That score will be stuck in my head for weeks.",
        questions="What is the best movie you saw this year?|Is the sequel worth watching in the cinema?|"
        "Who should play the villain in the remake?",
        hashtags="movies|film|cinema|MovieNight",
        rare_hashtags="FilmTwitter|Criterion|Letterboxd",
        emoji="🎬|🍿|🎥",
        keywords="movies|cinema|film|streaming|movie tickets|blu-ray",
        products="movie tickets|streaming subscriptions|home projectors|collector blu-rays|cinema passes",
        brands="Reel|Marquee|Spotlight",
        related="music|books",
    ),
    "music": _bank(
        subjects="the new album|this live set|the festival lineup|the guitar solo|the opening track|the tour|"
        "the vinyl pressing|this playlist|the bass line|the encore",
        claims="has been on repeat all week|is their best work yet|sold out in ten minutes|sounds even better live|"
        "gave me goosebumps|is a bit overproduced|deserves a Grammy|brought the whole crowd to its feet",
        actions="went to a concert last night|bought tickets for the summer festival|learned a new song on guitar|"
        "made a playlist for the road trip|found an old record at the flea market",
        opinions="Live music heals.|Vinyl just sounds warmer.|That chorus is pure gold.|"
        "Turn it up!|Nothing beats a small venue show.",
        questions="What album are you listening to this week?|Who should headline the festival next year?|"
        "Is vinyl really worth it?",
        hashtags="music|NowPlaying|NewMusic|concert",
        rare_hashtags="VinylCommunity|Shoegaze|BandcampFriday",
        emoji="🎵|🎸|🎧",
        keywords="music|concert tickets|headphones|vinyl|guitar|streaming music",
        products="concert tickets|wireless headphones|vinyl records|guitar lessons|music streaming",
        brands="Chord|Vinyl",
        related="movies|gaming",
    ),
    "gaming": _bank(
        subjects="the new patch|this boss fight|the open world|the battle pass|the speedrun|the indie game|"
        "the ranked season|my controller|the final dungeon|the console",
        claims="is way too hard|finally fixed the matchmaking|kept me up until 3am|ruined the balance|"
        "is the best game this year|has amazing level design|keeps crashing on launch|made me rage quit",
        actions="beat the final boss|stayed up all night gaming|hit diamond rank|finished the game at 100 percent|"
        "streamed for six hours",
        opinions="GG everyone.|One more run, then bed.|Skill issue, honestly.|"
        "Pay to win ruins everything.|Indie games are carrying the industry.",
        questions="What are you playing this weekend?|Is the new console worth the upgrade?|"
        "Which class should I pick for the raid?",
        hashtags="gaming|gamer|PS5|indiegame",
        rare_hashtags="speedrun|RetroGaming|Roguelike",
        emoji="🎮|🕹️|👾",
        keywords="video games|gaming|console|gaming pc|controller|game pass",
        products="gaming headsets|game consoles|gaming chairs|mechanical keyboards|game subscriptions",
        brands="Pixel|Respawn|Loot",
        related="tech|music",
    ),
    "tech": _bank(
        subjects="the new phone|this laptop|the software update|the smartwatch|the open source project|"
        "the cloud outage|my home server|the keyboard|the browser|the new chip",
        claims="drains the battery way too fast|is faster than I expected|broke everything again|"
        "is worth the upgrade|has the best screen I have seen|runs Linux perfectly|needs better documentation|"
        "finally shipped dark mode",
        actions="upgraded my laptop|built a home server|switched to a mechanical keyboard|"
        "migrated everything to the cloud|installed the beta update",
        opinions="Have you tried turning it off and on again?|Open source wins again.|"
        "Battery life is the only spec that matters.|Never update on a Friday.|Tech support is a lifestyle.",
        questions="Which laptop should I buy for programming?|Is the new phone worth the upgrade?|"
        "What is in your home lab?",
        hashtags="tech|gadgets|opensource|linux",
        rare_hashtags="HomeLab|SelfHosted|MechanicalKeyboards",
        emoji="💻|📱|🔧",
        keywords="laptop|smartphone|gadgets|cloud hosting|software|smartwatch",
        products="laptops|smartphones|cloud hosting|smartwatches|noise-cancelling headphones",
        brands="Byte|Circuit|Nimbus",
        related="ai|gaming|startups",
    ),
    "ai": _bank(
        subjects="the new language model|this neural network|the benchmark|the open weights release|"
        "the training run|the chatbot|the AI regulation|the GPU cluster|the research paper|the fine-tuning recipe",
        claims="hallucinates way too much|beats the old state of the art|needs more training data|"
        "is surprisingly good at code|overfits on the benchmark|changed how I write software|"
        "is mostly hype|runs on a single GPU",
        actions="fine-tuned a small model|read the new transformer paper|trained a model on my laptop|"
        "built a chatbot over the weekend|benchmarked three open models",
        opinions="Scale is not all you need.|Data quality beats model size.|Evals or it did not happen.|"
        "Attention really is all you need.|The open models are catching up fast.",
        questions="Which open model is best for coding?|How much data do you need to fine-tune?|"
        "Will AI replace junior developers?",
        hashtags="AI|MachineLearning|LLM|DeepLearning",
        rare_hashtags="MLOps|Interpretability|TinyML",
        emoji="🤖|🧠|📈",
        keywords="artificial intelligence|machine learning|ai tools|gpu|llm|data science",
        products="AI writing tools|GPU cloud credits|machine learning courses|data labeling services|AI assistants",
        brands="Neuron|Tensor|Cortex",
        related="tech|startups",
    ),
    "startups": _bank(
        subjects="our seed round|the pitch deck|the product launch|the founding team|the demo day|"
        "the startup|this accelerator|the growth metric|the pivot|our first customer",
        claims="closed faster than expected|needs a clearer story|is growing ten percent a week|"
        "burned through the runway|was the best decision we made|got rejected by every investor|"
        "hit product market fit|doubled revenue this quarter",
        actions="pitched to twenty investors this week|shipped our first feature|hired our first engineer|"
        "quit my job to build a startup|launched on Product Hunt",
        opinions="Talk to your users.|Ship early, ship often.|Revenue solves everything.|"
        "Founders need sleep too.|Distribution beats product.",
        questions="How did you find your first customers?|Should we raise now or bootstrap?|"
        "What makes a great pitch deck?",
        hashtags="startups|entrepreneur|founder|VentureCapital",
        rare_hashtags="Bootstrapped|IndieHackers|BuildInPublic",
        emoji="🚀|💡|📊",
        keywords="startup|entrepreneur|business software|fundraising|saas|small business",
        products="startup banking|payroll software|pitch coaching|coworking spaces|business software",
        brands="Launchpad|Foundry|Runway",
        related="tech|ai",
    ),
    "crypto": _bank(
        subjects="bitcoin|the altcoin season|my hardware wallet|the new token|the exchange|the ETF approval|"
        "the halving|the DeFi protocol|the NFT market|ethereum",
        claims="is going to the moon|just crashed twenty percent|is a total scam|is the future of money|"
        "got hacked again|is consolidating before the next run|needs real regulation|is back above its old high",
        actions="bought the dip|moved my coins to cold storage|sold everything at the top|"
        "staked my tokens|set up a hardware wallet",
        opinions="Not your keys, not your coins.|HODL.|Volatility is the price of admission.|"
        "Do your own research.|Bear markets build the next cycle.",
        questions="Is it too late to buy bitcoin?|Which wallet do you trust?|When does altcoin season start?",
        hashtags="crypto|bitcoin|BTC|ethereum",
        rare_hashtags="DeFi|Web3|Layer2",
        emoji="🪙|📉|💎",
        keywords="crypto|bitcoin|crypto exchange|wallet|blockchain|trading",
        products="crypto exchanges|hardware wallets|trading apps|crypto tax software|blockchain courses",
        brands="Satoshi|Ledgerline|Blockwise",
        related="tech|startups",
    ),
    "fitness": _bank(
        subjects="leg day|my morning run|the new gym|this workout plan|the marathon training|my protein shake|"
        "the deadlift|the yoga class|my step count|the rest day",
        claims="absolutely destroyed me|is finally paying off|needs more consistency|hit a new personal best|"
        "is harder than it looks|made me feel brand new|is the best part of my week|was pure suffering",
        actions="ran ten kilometers before work|hit a new deadlift record|signed up for a marathon|"
        "finished a thirty day challenge|went to the gym at 6am",
        opinions="No pain, no gain.|Consistency beats intensity.|Never skip leg day.|"
        "Sleep is the best supplement.|Progress, not perfection.",
        questions="What is your favorite workout split?|How do you stay motivated in winter?|Is creatine worth taking?",
        hashtags="fitness|gym|workout|running",
        rare_hashtags="Calisthenics|Powerlifting|UltraRunning",
        emoji="💪|🏋️|🏃",
        keywords="fitness|gym membership|running shoes|protein|workout|yoga mat",
        products="gym memberships|running shoes|protein powder|fitness trackers|yoga mats",
        brands="Peak|Ironside|Stride",
        related="football|cooking",
    ),
    "fashion": _bank(
        subjects="the new collection|this vintage jacket|the runway show|my capsule wardrobe|the sneaker drop|"
        "the street style|this thrift find|the denim trend|the fashion week|the oversized blazer",
        claims="is giving pure nineties|sold out in minutes|is totally overpriced|goes with everything|"
        "is the trend of the season|looks better in person|was stolen straight from the archives|needs to come back",
        actions="found a designer coat at the thrift store|reorganized my whole closet|went to fashion week|"
        "bought my first tailored suit|styled three outfits from one jacket",
        opinions="Fit is everything.|Buy less, choose well.|Comfort is the new luxury.|"
        "Thrifting is the best hobby.|Accessories make the outfit.",
        questions="Where do you buy your basics?|Are skinny jeans coming back?|What is your signature piece?",
        hashtags="fashion|style|OOTD|streetwear",
        rare_hashtags="SlowFashion|ThriftFlip|Menswear",
        emoji="👗|👟|🕶️",
        keywords="fashion|clothing|sneakers|streetwear|jackets|accessories",
        products="designer sneakers|denim jackets|sunglasses|capsule wardrobes|tailored suits",
        brands="Atelier|Stitch|Threadline",
        related="photography|music",
    ),
    "politics": _bank(
        subjects="the election|the new bill|the debate|the senator|the budget vote|the opposition|"
        "the polling|the prime minister|the city council|the campaign",
        claims="was a complete disaster|is long overdue|will not pass the senate|ignored the real issues|"
        "is tightening in the swing states|needs more transparency|broke another promise|won the debate easily",
        actions="voted early this morning|watched the whole debate|wrote to my representative|"
        "volunteered for a local campaign|went to the town hall meeting",
        opinions="Every vote counts.|Both parties are missing the point.|Democracy needs participation.|"
        "Follow the money.|Local elections matter more than people think.",
        questions="Who won the debate tonight?|Will the bill pass this year?|Are you voting early?",
        hashtags="politics|election|vote|democracy",
        rare_hashtags="LocalPolitics|PolicyWonk|CivicTech",
        emoji="🗳️|🏛️|📢",
        keywords="politics|election|news|voting|policy|government",
        products="news subscriptions|policy newsletters|civic courses|debate tickets",
        brands="Ballot|Capitol|Civic",
        related="climate|science",
    ),
    "climate": _bank(
        subjects="the heatwave|the climate summit|the solar farm|the carbon tax|the wildfire season|"
        "my heat pump|the emissions report|the sea level data|the electric bus fleet|the wind farm",
        claims="broke another record|is not ambitious enough|cut our energy bill in half|"
        "is the scariest thing I have read this year|should have happened a decade ago|"
        "gives me some hope|is happening faster than predicted|needs real funding",
        actions="installed solar panels|switched to a heat pump|joined the climate march|"
        "went car free for a month|planted trees with the kids",
        opinions="There is no planet B.|Every tenth of a degree matters.|Clean energy is cheaper now.|"
        "Act locally, think globally.|The science is clear.",
        questions="Is a heat pump worth it in a cold climate?|What can cities do about heatwaves?|"
        "Did the summit achieve anything?",
        hashtags="climate|ClimateAction|sustainability|renewables",
        rare_hashtags="HeatPumps|Rewilding|SolarPunk",
        emoji="🌍|☀️|🌱",
        keywords="solar panels|sustainability|electric cars|heat pump|renewable energy|climate",
        products="solar panels|heat pumps|green energy plans|reusable bottles|carbon offsets",
        brands="Verdant|Solaris|Greenway",
        related="science|politics|cars",
    ),
    "science": _bank(
        subjects="the new telescope image|this study|the Mars rover|the particle collider|the vaccine trial|"
        "the fossil discovery|the quantum experiment|the gene therapy|the eclipse|the peer review",
        claims="is absolutely stunning|could change medicine forever|needs to be replicated|"
        "found something nobody expected|was published today|is a huge step for physics|"
        "has a tiny sample size|confirms what we suspected",
        actions="watched the rocket launch|read the whole paper twice|visited the science museum|"
        "saw the eclipse from the hills|built a telescope with my kids",
        opinions="Science is a method, not a belief.|Correlation is not causation.|The universe is wild.|"
        "Fund basic research.|Peer review matters.",
        questions="What is the coolest science fact you know?|Could there be life on Europa?|"
        "How do they measure the age of the universe?",
        hashtags="science|space|research|astronomy",
        rare_hashtags="Paleontology|QuantumPhysics|CitizenScience",
        emoji="🔬|🔭|🧬",
        keywords="science|telescope|space|research|astronomy|online courses",
        products="telescopes|science kits|online science courses|museum memberships|microscopes",
        brands="Quark|Helix|Orbit",
        related="climate|ai",
    ),
    "books": _bank(
        subjects="this novel|the sequel|the book club pick|the ending|the audiobook|the fantasy series|"
        "the memoir|the author|the library haul|the translation",
        claims="kept me up all night|is a masterpiece|dragged in the middle|made me cry on the train|"
        "deserves way more readers|was better than the movie|has the best opening line|is my comfort read",
        actions="finished three books this week|joined a book club|visited the old bookshop downtown|"
        "read in the park all afternoon|started the series again",
        opinions="One more chapter.|Libraries are magic.|Real books smell better.|"
        "Never judge a book by its cover.|Reading is the best escape.",
        questions="What are you reading right now?|Is the series worth finishing?|"
        "Which book should our club read next?",
        hashtags="books|reading|BookTwitter|amreading",
        rare_hashtags="Bookstagram|SFFReads|PoetryMonth",
        emoji="📚|📖|☕",
        keywords="books|reading|ebooks|audiobooks|bookstore|novels",
        products="ebook readers|audiobook subscriptions|book boxes|reading lamps|bestselling novels",
        brands="Chapter|Folio|Inkwell",
        related="movies|science",
    ),
    "pets": _bank(
        subjects="my dog|the new kitten|our rescue puppy|the cat|the vet visit|the dog park|"
        "my parrot|the hamster|the pet insurance|the puppy training",
        claims="stole my sandwich again|is the goodest boy|refuses to walk in the rain|knocked everything off the table|"
        "went better than expected|made a new best friend|sleeps twenty hours a day|learned to sit in one day",
        actions="adopted a rescue dog|took the puppy to the beach|bought way too many cat toys|"
        "spent the morning at the vet|taught my dog a new trick",
        opinions="Adopt, do not shop.|Dogs make everything better.|Cats rule the house.|"
        "Every pet deserves a good home.|Vet bills are no joke.",
        questions="How do you stop a puppy from chewing everything?|What food do you feed your cat?|"
        "Is pet insurance worth it?",
        hashtags="pets|dogs|cats|DogsOfTwitter",
        rare_hashtags="SeniorDogs|FosterKittens|Parrots",
        emoji="🐶|🐱|🐾",
        keywords="pet food|dog toys|pet insurance|cat litter|dog training|veterinary",
        products="pet food|dog toys|pet insurance|cat trees|dog training classes",
        brands="Pawprint|Whisker|Fetch",
        related="photography",
    ),
    "photography": _bank(
        subjects="this sunrise shot|my new lens|the film camera|the golden hour|the street photo|"
        "the long exposure|the photo walk|the portrait session|the edit|the drone shot",
        claims="came out razor sharp|is worth every penny|needs a bit more contrast|took me three hours to edit|"
        "captured the light perfectly|is my best shot this year|was a happy accident|looks better in black and white",
        actions="shot a roll of film|went on a photo walk at dawn|bought a new prime lens|"
        "printed my photos for the first time|took portraits of strangers",
        opinions="The best camera is the one you have.|Light is everything.|Shoot more, edit less.|"
        "Film is not dead.|Composition beats megapixels.",
        questions="Which lens should I get for portraits?|Do you shoot raw or jpeg?|"
        "What is the best time of day for landscapes?",
        hashtags="photography|photooftheday|streetphotography|landscape",
        rare_hashtags="FilmPhotography|Astrophotography|Macro",
        emoji="📷|🌅|🎞️",
        keywords="camera|lens|photography|photo editing|tripod|prints",
        products="mirrorless cameras|prime lenses|photo editing software|tripods|photo prints",
        brands="Aperture|Shutter|Lumen",
        related="travel|fashion",
    ),
    "cars": _bank(
        subjects="the new electric car|my old hatchback|the track day|the road test|the charging network|"
        "the classic car show|the engine|the test drive|the car insurance|the rally",
        claims="handles like a dream|broke down on the motorway again|is faster than it looks|"
        "needs a better range|was the best drive of my life|costs a fortune to fix|"
        "still runs like new|sounds incredible at full throttle",
        actions="took the car to a track day|restored an old engine|test drove three cars this weekend|"
        "drove the coast road at sunrise|changed my own oil",
        opinions="Manual gearboxes forever.|Electric is the future.|Nothing beats an open road.|"
        "Check your tire pressure.|Torque is addictive.",
        questions="Should my next car be electric?|What is the best first car?|Is the extended warranty worth it?",
        hashtags="cars|CarsOfTwitter|EV|automotive",
        rare_hashtags="JDM|ClassicCars|TrackDay",
        emoji="🚗|🏎️|🔋",
        keywords="cars|electric vehicle|car insurance|auto parts|test drive|car loan",
        products="electric cars|car insurance|auto parts|car loans|dash cams",
        brands="Torque|Roadline|Piston",
        related="climate|tech",
    ),
}

TOPICS: list[str] = list(BANKS)
