// A small multilingual corpus for the demo; paste your own instead.
export const SAMPLE_DOCS = [
  'The giant panda (Ailuropoda melanoleuca) is a bear species endemic to China. It is characterised by its black-and-white coat and feeds almost entirely on bamboo.',
  'Red pandas are small mammals native to the eastern Himalayas and southwestern China. Despite the name they are not closely related to the giant panda.',
  'Pandas spend 10 to 16 hours a day eating; an adult can consume 12 to 38 kilograms of bamboo daily because the plant offers so little energy.',
  'Paris is the capital and most populous city of France, with an estimated population of 2.1 million residents.',
  'Le Louvre, situé à Paris, est le musée d’art le plus visité au monde et abrite la Joconde.',
  'Photosynthesis converts light energy into chemical energy: plants use sunlight, water and carbon dioxide to produce glucose and oxygen.',
  'A cross-encoder reads the query and the passage together and outputs one relevance score, which makes it more accurate than comparing two separate embeddings.',
  'BM25 ranks documents by term frequency and inverse document frequency, with saturation and document-length normalisation.',
  'WebGPU is a web API that exposes modern GPU compute and graphics to web pages, successor to WebGL.',
  'Der Rhein ist einer der längsten Flüsse Europas und fließt durch die Schweiz, Deutschland und die Niederlande.',
  '大熊猫是中国特有的熊科动物，主要以竹子为食，被誉为“国宝”。',
  'The Great Wall of China is a series of fortifications built across northern China over many centuries to protect against invasions.',
  'Rust is a systems programming language focused on safety, speed and concurrency, without a garbage collector.',
  'Conservation efforts raised the wild giant panda population to about 1,860 animals, and the IUCN moved it from endangered to vulnerable in 2016.',
  'Mount Everest, at 8,849 metres, is Earth’s highest mountain above sea level, on the border between Nepal and China.',
  'Retrieval-augmented generation first retrieves relevant passages, often reranks them, and then gives the best ones to a language model as context.',
];
