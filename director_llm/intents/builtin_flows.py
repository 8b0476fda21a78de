"""The built-in flow set used when a config declares no ``[intents]``.

A small, general assistant vocabulary: greeting, help, create_task, query_status, cancel,
thanks, goodbye, smalltalk, and ``out_of_scope`` (the fallback flow). Each flow has a
description (used in the prompts of the remote tiers) and short, informal examples in
Brazilian Portuguese first and English second (they train the local tier, whose sentence
encoder is multilingual).

Plain data, no imports: importing this module must stay free.
"""

__all__ = ["BUILTIN_FALLBACK_FLOW", "BUILTIN_FLOWS"]

#: The flow chosen when nothing else fits (or the local tier's confidence is too low).
BUILTIN_FALLBACK_FLOW = "out_of_scope"

BUILTIN_FLOWS: dict[str, dict] = {
    "greeting": {
        "description": "The user says hello or opens the conversation, with no request yet.",
        "examples": [
            "oi", "olá", "oi, tudo bem?", "bom dia", "boa tarde", "boa noite!", "e aí",
            "opa, beleza?", "fala aí", "olá, tem alguém aí?", "oii", "salve", "eae, tudo certo?",
            "bom dia, tudo bom?", "oi Director",
            "hi", "hello", "hey there", "good morning", "hi, how's it going?", "yo",
        ],
    },
    "help": {
        "description": "The user asks what the assistant can do or how to use it.",
        "examples": [
            "me ajuda", "preciso de ajuda", "o que você faz?", "o que você sabe fazer?",
            "como funciona isso?", "quais são os comandos?", "como eu uso você?",
            "me explica como funciona", "que tipo de coisa posso te pedir?", "socorro, não entendi nada",
            "pode me ajudar?", "tem um tutorial?", "quais as opções?", "ajuda por favor",
            "help", "what can you do?", "how does this work?", "I need help", "show me the commands",
            "how do I use this?",
        ],
    },
    "create_task": {
        "description": "The user wants to create a new task, reminder or to-do item.",
        "examples": [
            "quero criar uma tarefa", "cria uma tarefa pra mim", "nova tarefa", "adiciona uma tarefa",
            "me lembra de pagar a conta amanhã", "anota aí: ligar pro cliente às 15h",
            "cadastra uma tarefa de revisar o relatório", "preciso agendar uma tarefa para sexta",
            "coloca na minha lista comprar pão", "cria um lembrete pra reunião de segunda",
            "registra uma nova atividade", "quero adicionar um item na lista de afazeres",
            "agenda pra mim enviar o orçamento semana que vem", "abre uma tarefa nova",
            "põe uma tarefa para hoje à tarde", "cria um to-do de estudar inglês",
            "create a task", "add a new task for tomorrow", "remind me to call mom",
            "add buy milk to my to-do list", "new reminder: dentist on friday",
        ],
    },
    "query_status": {
        "description": "The user asks about the status or progress of a task, order or request.",
        "examples": [
            "qual o status da minha tarefa?", "como está meu pedido?", "já terminou?",
            "em que pé está aquilo?", "cadê meu pedido?", "quais tarefas estão pendentes?",
            "o que falta fazer hoje?", "minha solicitação foi concluída?", "e aí, andou alguma coisa?",
            "lista minhas tarefas", "mostra o andamento do projeto", "tem alguma tarefa atrasada?",
            "a tarefa de ontem foi feita?", "quanto falta pra ficar pronto?", "me mostra o que tá aberto",
            "what's the status of my task?", "is it done yet?", "where is my order?",
            "show my pending tasks", "any updates on my request?",
        ],
    },
    "cancel": {
        "description": "The user wants to cancel, stop, undo or delete something (a task, an order, the current action).",
        "examples": [
            "cancela", "quero cancelar", "cancela a tarefa", "esquece isso", "para tudo",
            "desiste", "apaga essa tarefa", "não quero mais", "remove o lembrete de amanhã",
            "cancela meu pedido", "desfaz isso", "deixa pra lá", "exclui a última tarefa",
            "aborta", "pode cancelar a reunião", "tira isso da lista",
            "cancel", "cancel that", "never mind", "stop", "delete the task", "undo",
        ],
    },
    "thanks": {
        "description": "The user thanks the assistant or acknowledges an answer.",
        "examples": [
            "obrigado", "obrigada!", "valeu", "valeu demais", "muito obrigado pela ajuda",
            "brigado", "show, obrigado", "perfeito, valeu!", "agradeço", "top, era isso mesmo",
            "obrigadão", "ajudou muito, obrigado", "beleza, valeu", "massa, brigadão",
            "thanks", "thank you", "thanks a lot", "cheers", "great, thanks!",
        ],
    },
    "goodbye": {
        "description": "The user ends the conversation.",
        "examples": [
            "tchau", "até mais", "até logo", "falou", "flw", "até amanhã", "tenho que ir, tchau",
            "por hoje é só", "encerrar", "fui!", "boa noite, até amanhã", "até a próxima",
            "pode encerrar a conversa", "tchauzinho",
            "bye", "goodbye", "see you later", "that's all for today", "talk to you later",
        ],
    },
    "smalltalk": {
        "description": "Chit-chat about the assistant itself or casual conversation, with no task.",
        "examples": [
            "como você está?", "você é um robô?", "qual o seu nome?", "quem te criou?",
            "você é humano?", "conta uma piada", "tá fazendo o quê?", "você gosta de música?",
            "você dorme?", "que dia chato hoje", "tô entediado", "você é inteligente?",
            "qual sua cor favorita?", "você tem sentimentos?", "kkkkk",
            "how are you?", "are you a bot?", "what's your name?", "tell me a joke", "I'm bored",
        ],
    },
    "out_of_scope": {
        "description": "Anything the assistant does not handle: general knowledge, other services, unrelated requests.",
        "examples": [
            "qual a capital da Austrália?", "quanto tá o dólar hoje?", "me passa uma receita de bolo de cenoura",
            "quem ganhou o jogo do Flamengo?", "vai chover amanhã em São Paulo?", "traduz isso pro japonês",
            "qual a raiz quadrada de 144?", "me recomenda um filme de terror", "como faço pra trocar um pneu?",
            "quantas calorias tem uma banana?", "escreve um poema sobre o mar", "qual o melhor celular pra comprar?",
            "compra uma passagem pra Recife", "como declarar imposto de renda?", "me explica física quântica",
            "qual a altura do Everest?", "pede uma pizza pra mim",
            "what's the capital of Peru?", "book me a flight to Lisbon", "how tall is the Eiffel tower?",
            "what's the weather like today?", "translate this into German",
        ],
    },
}
